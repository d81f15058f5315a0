//! The OpenAI-compatible embedder against the provider simulator, which speaks OpenAI's
//! `/v1/embeddings` wire format (its vectors are a hashed bag of words: texts sharing words are
//! closer) and fails on demand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use common::provider::ProviderError;
use common::settings::Secret;
use provider_sim::{Behaviour, SimConfig, Simulator};
use semantic_worker::embed::openai::{OpenAiConfig, OpenAiEmbedder};
use semantic_worker::embed::{EmbedError, Embedder, cosine};
use serde_json::json;

const KEY: &str = "sk-test-5ecret-embeddings-key";

fn config(sim: &Simulator, model: &str, dimensions: Option<usize>) -> OpenAiConfig {
    OpenAiConfig {
        base_url: sim.base_url(),
        dimensions,
        timeout: Duration::from_secs(10),
        ..OpenAiConfig::openai(Secret::new(KEY), model)
    }
}

fn texts(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn vectors_come_back_in_input_order_unit_length_with_usage() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let embedder = OpenAiEmbedder::connect(config(&sim, "text-embedding-3-small", None))
        .await
        .unwrap();
    assert_eq!(
        (embedder.provider(), embedder.model(), embedder.dimensions()),
        ("openai", "text-embedding-3-small", 1536)
    );
    assert!(
        sim.requests().is_empty(),
        "a known model's size needs no request"
    );

    let input = texts(&[
        "the cat sat on the mat",
        "quarterly revenue grew",
        "a cat on a mat",
    ]);
    let out = embedder.embed(&input).await.unwrap();
    assert_eq!(out.tokens, 14);
    assert_eq!(out.vectors.len(), 3);
    assert!(
        cosine(&out.vectors[0], &out.vectors[2]) > cosine(&out.vectors[0], &out.vectors[1]) + 0.3
    );
    for (i, text) in input.iter().enumerate() {
        let alone = embedder.embed(std::slice::from_ref(text)).await.unwrap();
        assert_eq!(alone.vectors[0], out.vectors[i], "text {i}");
    }

    let request = &sim.requests()[0];
    assert_eq!(request.path, "/v1/embeddings");
    assert_eq!(
        request.authorization.as_deref(),
        Some(&*format!("Bearer {KEY}"))
    );
    assert_eq!(
        request.body,
        json!({"model": "text-embedding-3-small", "input": input, "encoding_format": "float"})
    );
}

#[tokio::test]
async fn more_than_2048_texts_go_in_several_requests_and_keep_their_order() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let embedder = OpenAiEmbedder::connect(config(&sim, "text-embedding-3-small", None))
        .await
        .unwrap();
    let input: Vec<String> = (0..2100).map(|i| format!("text number {i}")).collect();
    let out = embedder.embed(&input).await.unwrap();
    assert_eq!(out.vectors.len(), 2100);
    assert_eq!(out.tokens, 3 * 2100);
    let sizes: Vec<usize> = sim.requests().iter().map(|r| r.texts.len()).collect();
    assert_eq!(sizes, vec![2048, 52]);
    let last = embedder.embed(&input[2099..]).await.unwrap();
    assert_eq!(last.vectors[0], out.vectors[2099]);
}

#[tokio::test]
async fn dimensions_are_sent_to_text_embedding_3_and_refused_for_others() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let embedder = OpenAiEmbedder::connect(config(&sim, "text-embedding-3-large", Some(256)))
        .await
        .unwrap();
    assert_eq!(embedder.dimensions(), 256);
    let out = embedder.embed(&texts(&["hello world"])).await.unwrap();
    assert_eq!(out.vectors[0].len(), 256);
    assert_eq!(sim.requests()[0].body["dimensions"], 256);

    for (model, dimensions) in [
        ("text-embedding-ada-002", 256),
        ("nomic-embed-text", 768),
        ("text-embedding-3-small", 2000),
    ] {
        let err = OpenAiEmbedder::connect(config(&sim, model, Some(dimensions)))
            .await
            .unwrap_err();
        assert!(matches!(err, EmbedError::Invalid(_)), "{model}: {err:?}");
    }
}

#[tokio::test]
async fn rate_limits_carry_the_wait_and_server_errors_are_retryable() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let embedder = OpenAiEmbedder::connect(config(&sim, "text-embedding-3-small", None))
        .await
        .unwrap();
    let input = texts(&["hello"]);

    sim.push_script(Behaviour::RateLimited {
        retry_after_secs: 3,
    });
    let err = embedder.embed(&input).await.unwrap_err();
    assert_eq!(err.code(), "rate_limited");
    assert!(err.retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));

    sim.push_script(Behaviour::ServerError);
    let err = embedder.embed(&input).await.unwrap_err();
    assert_eq!((err.code(), err.retryable()), ("upstream_error", true));

    sim.push_script(Behaviour::MalformedLine { after_chunks: 0 });
    let err = embedder.embed(&input).await.unwrap_err();
    assert_eq!((err.code(), err.retryable()), ("upstream_protocol", false));

    assert!(
        embedder.embed(&input).await.is_ok(),
        "the next request succeeds"
    );
}

#[tokio::test]
async fn a_refused_key_is_an_operators_error_whose_text_never_holds_the_key() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let embedder = OpenAiEmbedder::connect(config(&sim, "text-embedding-3-small", None))
        .await
        .unwrap();
    sim.push_script(Behaviour::Refused {
        status: 401,
        message: format!("Incorrect API key provided: {KEY}. You can find your API key at https://platform.openai.com/account/api-keys."),
    });
    let err = embedder.embed(&texts(&["hello"])).await.unwrap_err();
    assert!(
        matches!(
            err,
            EmbedError::Provider(ProviderError::Misconfigured { status: 401 })
        ),
        "{err:?}"
    );
    assert_eq!(
        (err.code(), err.retryable()),
        ("upstream_misconfigured", false)
    );
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(KEY) && !text.contains("5ecret"), "{text}");
    }
}

#[tokio::test]
async fn a_text_over_the_models_limit_is_the_callers_mistake() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let embedder = OpenAiEmbedder::connect(config(&sim, "text-embedding-3-small", None))
        .await
        .unwrap();
    let err = embedder.embed(&["word ".repeat(9000)]).await.unwrap_err();
    let EmbedError::Invalid(why) = &err else {
        panic!("{err:?}");
    };
    assert!(
        why.contains("maximum context length is 8192 tokens"),
        "{why}"
    );
    let blank = embedder.embed(&texts(&["ok", ""])).await.unwrap_err();
    assert!(matches!(blank, EmbedError::Invalid(_)));
}

#[tokio::test]
async fn a_server_too_slow_times_out_as_a_retryable_failure() {
    let sim = Simulator::start(SimConfig {
        first_token_delay: Duration::from_secs(5),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let embedder = OpenAiEmbedder::connect(OpenAiConfig {
        timeout: Duration::from_millis(300),
        ..config(&sim, "text-embedding-3-small", None)
    })
    .await
    .unwrap();
    let err = embedder.embed(&texts(&["hello"])).await.unwrap_err();
    assert!(
        matches!(&err, EmbedError::Provider(ProviderError::Connection(why)) if why == "timed out"),
        "{err:?}"
    );
    assert!(err.retryable());
}
