//! Replays every input of the fuzz corpus and every saved regression
//! against the model (on stable, without the fuzzer or a sanitizer).

use std::path::Path;

fn replay(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut count = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        switchback_fuzz::run_named(&path.display().to_string(), &data);
        count += 1;
    }
    count
}

#[test]
fn every_corpus_input_and_regression_agrees_with_the_model() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = replay(&root.join("corpus/coroutines"));
    let regressions = replay(&root.join("regressions"));
    assert!(corpus > 0, "the corpus in fuzz/corpus/coroutines is empty");
    eprintln!("replayed {corpus} corpus inputs and {regressions} regressions");
}
