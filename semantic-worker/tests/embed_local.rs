//! The offline embedder (`local`): the real all-MiniLM-L6-v2 on the real ONNX Runtime.
//!
//! The model and the runtime are installed by `scripts/test` (`ensure_embedding_model`,
//! `ensure_onnxruntime` in `scripts/lib.sh`). Without them these tests fail and say how to
//! install them: a checkout where they pass without the model would prove nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::OnceLock;

use semantic_worker::embed::local::LocalEmbedder;
use semantic_worker::embed::{EmbedError, Embedder, cosine};

/// sentence-transformers' all-MiniLM-L6-v2 for this sentence begins 0.0677, 0.0635, 0.0487,
/// 0.0793, 0.0374 (f32); the int8 export gives these.
const EXAMPLE: &str = "This is an example sentence";
const EXAMPLE_DIMS: [f32; 5] = [0.0668, 0.0612, 0.0509, 0.0790, 0.0384];

/// A file these tests need, from `$var` or where `scripts/lib.sh` installs it.
fn installed(var: &str, default: &str, how: &str) -> PathBuf {
    let path = std::env::var_os(var).map_or_else(
        || PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(default),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing: install it with `. scripts/lib.sh && {how}` (scripts/test does)",
        path.display()
    );
    path
}

fn embedder() -> &'static LocalEmbedder {
    static MODEL: OnceLock<LocalEmbedder> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = installed(
            "SEMANTIC__MODEL_DIR",
            ".cache/aibackend/models/all-minilm-l6-v2",
            "ensure_embedding_model",
        );
        let dylib = installed(
            "ORT_DYLIB_PATH",
            ".cache/aibackend/lib/libonnxruntime.so.1.32.0",
            "ensure_onnxruntime",
        );
        LocalEmbedder::load(&dir, &dylib, 2).unwrap_or_else(|e| panic!("{e}"))
    })
}

fn texts(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[tokio::test]
async fn the_example_sentence_matches_the_reference_vector() {
    let model = embedder();
    assert_eq!(
        (model.provider(), model.model()),
        ("local", "all-minilm-l6-v2")
    );
    assert_eq!(model.dimensions(), 384);
    let out = model.embed(&texts(&[EXAMPLE])).await.unwrap();
    let v = &out.vectors[0];
    assert_eq!(v.len(), 384);
    assert!((norm(v) - 1.0).abs() < 1e-4, "norm {}", norm(v));
    for (i, (got, want)) in v.iter().zip(EXAMPLE_DIMS).enumerate() {
        assert!(
            (got - want).abs() < 5e-4,
            "dimension {i}: {got} (reference {want})"
        );
    }
    // this, is, an, example, sentence.
    assert_eq!(out.tokens, 5);
}

#[tokio::test]
async fn related_sentences_are_closer_than_unrelated_ones() {
    let out = embedder()
        .embed(&texts(&[
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The stock market fell sharply this morning.",
            "How do I reset my password?",
            "I forgot my login credentials and cannot sign in.",
        ]))
        .await
        .unwrap();
    let v = &out.vectors;
    let (food, bread, market) = (
        cosine(&v[0], &v[1]),
        cosine(&v[0], &v[2]),
        cosine(&v[1], &v[2]),
    );
    assert!(
        food > 0.6 && food > market + 0.4,
        "food/bread {food}, food/market {market}"
    );
    assert!(bread < 0.2, "bread/market {bread}");
    let (password, off) = (cosine(&v[3], &v[4]), cosine(&v[3], &v[0]));
    assert!(
        password > off + 0.3,
        "password/login {password}, password/food {off}"
    );
}

#[tokio::test]
async fn a_batch_gives_the_vectors_of_its_texts_one_by_one() {
    // 40 texts of 1 to ~120 words: two model batches, each padded to its longest.
    let words = "the quick brown fox jumps over the lazy dog while a cat watches from the old \
                 wooden fence near the river bank";
    let words: Vec<&str> = words.split_whitespace().collect();
    let batch: Vec<String> = (0..40)
        .map(|i| {
            let n = 1 + (i * 37) % 120;
            (0..n)
                .map(|k| words[(k + i) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let model = embedder();
    let together = model.embed(&batch).await.unwrap();
    assert_eq!(together.vectors.len(), 40);
    let mut tokens = 0;
    for (i, text) in batch.iter().enumerate() {
        let alone = model.embed(std::slice::from_ref(text)).await.unwrap();
        tokens += alone.tokens;
        // Identical here; a little room for other CPUs' kernels.
        let c = cosine(&together.vectors[i], &alone.vectors[0]);
        assert!(
            c > 0.9999,
            "text {i}: cosine {c} between its batched and single vectors"
        );
        let diff = together.vectors[i]
            .iter()
            .zip(&alone.vectors[0])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-3, "text {i}: a dimension differs by {diff}");
    }
    assert_eq!(together.tokens, tokens);
}

#[tokio::test]
async fn a_long_text_is_truncated_not_refused() {
    let model = embedder();
    assert_eq!(model.max_tokens(), 256);
    // 2,000 words of one word piece each: the model reads the first 254 (256 with [CLS] and
    // [SEP]), so the vector is that of those 254 words.
    let vocabulary = [
        "river", "stone", "bright", "morning", "quiet", "garden", "window", "music",
    ];
    let long: Vec<&str> = (0..2000).map(|i| vocabulary[(i * 5 + i / 8) % 8]).collect();
    let out = model
        .embed(&[long.join(" "), long[..254].join(" "), long[..200].join(" ")])
        .await
        .unwrap();
    assert_eq!(out.vectors.len(), 3);
    assert!((norm(&out.vectors[0]) - 1.0).abs() < 1e-4);
    // 254 + 254 + 200 word pieces read.
    assert_eq!(out.tokens, 708);
    let prefix = cosine(&out.vectors[0], &out.vectors[1]);
    assert!(prefix > 0.999, "long text vs its first 254 words: {prefix}");
}

#[tokio::test]
async fn blank_texts_are_refused_before_the_model_runs() {
    let err = embedder().embed(&texts(&["fine", "  "])).await.unwrap_err();
    assert!(matches!(err, EmbedError::Invalid(_)), "{err:?}");
    assert_eq!(err.code(), "invalid_input");
}
