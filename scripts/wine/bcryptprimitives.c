/* A stand-in for Windows' bcryptprimitives.dll under Wine 8, which lacks
 * ProcessPrng: Rust's std imports it to seed HashMap keys. Tests need
 * different keys per run, not secret ones, so this mixes the performance
 * counter into an xorshift generator. Built by scripts/wine.sh with mingw. */
#include <windows.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    LARGE_INTEGER counter;
    static ULONGLONG state;
    QueryPerformanceCounter(&counter);
    state ^= (ULONGLONG)counter.QuadPart * 0x9E3779B97F4A7C15ull + 1;
    for (SIZE_T i = 0; i < len; i++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data[i] = (BYTE)(state >> 32);
    }
    return TRUE;
}
