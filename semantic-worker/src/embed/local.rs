//! The offline embedder `local`: all-MiniLM-L6-v2 (384 dimensions) in the worker's process, the
//! default when no provider key is set. It gives the vectors of sentence-transformers' model of
//! that name: WordPiece tokens, the BERT encoder, a mean over the real (unpadded) tokens, L2
//! normalised.
//!
//! Why ONNX Runtime (the `ort` crate) and an int8 model rather than candle and the f32
//! safetensors: on the 2 cores this runs on, the int8 ONNX export did 229 sentences/s one at a
//! time and 348/s in batches of 32 on an idle machine, candle's f32 BERT 40–58/s. The int8
//! vectors differ from the f32 model's in the third decimal (0.0668 for 0.0677 in the first
//! dimension of the reference sentence, tests/embed_local.rs). The price is a C++ runtime:
//! `libonnxruntime.so` from the PyPI wheel `onnxruntime`, loaded at run time (`load-dynamic`:
//! nothing is downloaded at build time), installed with the model by `scripts/lib.sh`
//! (`ensure_onnxruntime`, `ensure_embedding_model`), never at run time.
//!
//! The tokenizer is the `tokenizers` crate reading the model's `tokenizer.json` (BERT
//! WordPiece, lower-casing), built without onig, progress bars or downloads.
//!
//! Texts longer than the model's 256 word pieces (sentence-transformers' `max_seq_length` for
//! this model, read from `sentence_bert_config.json`) are truncated, not refused: the vector
//! stands for the first ~200 words. Chunk long documents before embedding them.
//!
//! A call is tokenised and run on a blocking thread. Texts are sorted by length and run in
//! batches of up to [`BATCH`] (fewer when long: at most 2,048 padded word pieces a batch, which
//! bounds memory), so that padding stays short; the attention mask keeps padding out of the
//! result, so a text's vector in a batch is the one it gets alone (to the last bit with ONNX
//! Runtime 1.32 here).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use super::{EmbedError, Embedder, Embeddings, check_texts, normalize};

/// The texts of one model run at most: past 32 the gain in throughput is nil on 2 cores and
/// the padded tensors only grow.
pub const BATCH: usize = 32;

/// Padded word pieces of one model run at most (rows x longest): keeps the attention's
/// intermediate tensors (rows x 12 heads x length², float32) near 25 MB when the texts are long
/// (8 texts of 256), while 32 short sentences still go together.
const BATCH_TOKENS: usize = 2048;

/// The model's name as clients see it.
pub const MODEL: &str = "all-minilm-l6-v2";

/// The word pieces one text keeps (with `[CLS]` and `[SEP]`) when the model directory does not
/// say: sentence-transformers' `max_seq_length` of all-MiniLM-L6-v2.
const DEFAULT_MAX_TOKENS: usize = 256;

/// The files [`LocalEmbedder::load`] needs in the model directory.
const MODEL_FILES: [&str; 2] = ["model.onnx", "tokenizer.json"];

/// Why the local model could not be loaded: what is missing or broken, and how to install it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(String);

/// all-MiniLM-L6-v2 on ONNX Runtime. Cheap to clone (one model, shared).
#[derive(Clone)]
pub struct LocalEmbedder {
    inner: Arc<Inner>,
}

struct Inner {
    /// `Session::run` takes `&mut self`: one run at a time, which is also all 2 cores can do.
    session: Mutex<Session>,
    tokenizer: Tokenizer,
    /// Whether the graph takes `token_type_ids` (BERT exports usually do; all zeros here).
    type_ids: bool,
    /// The output read: `last_hidden_state`, `[batch, tokens, dimensions]`.
    output: String,
    dimensions: usize,
    max_tokens: usize,
    threads: usize,
    dir: PathBuf,
}

impl std::fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("model", &MODEL)
            .field("dir", &self.inner.dir)
            .field("dimensions", &self.inner.dimensions)
            .field("max_tokens", &self.inner.max_tokens)
            .field("threads", &self.inner.threads)
            .finish()
    }
}

/// ONNX Runtime allows one environment per process, ever (`ort` refuses a second `build`): it is
/// made by the first load and shared by every model loaded after.
static ENVIRONMENT: Mutex<Option<ort::environment::Environment>> = Mutex::new(None);

fn environment(dylib: &Path) -> Result<ort::environment::Environment, LoadError> {
    let mut slot = ENVIRONMENT
        .lock()
        .map_err(|_| LoadError("the ONNX Runtime environment lock is poisoned".into()))?;
    if let Some(env) = slot.as_ref() {
        return Ok(env.clone());
    }
    if !dylib.is_file() {
        return Err(LoadError(format!(
            "no ONNX Runtime at {} (ORT_DYLIB_PATH): install it with scripts/dev or scripts/test \
             (ensure_onnxruntime in scripts/lib.sh)",
            dylib.display()
        )));
    }
    let env = ort::init_from(dylib)
        .map_err(|e| LoadError(format!("ONNX Runtime does not load: {e}")))?
        .with_name("semantic-worker")
        .build()
        .map_err(|e| LoadError(format!("ONNX Runtime does not start: {e}")))?;
    *slot = Some(env.clone());
    Ok(env)
}

impl LocalEmbedder {
    /// Loads the model in `model_dir` (`model.onnx`, `tokenizer.json`, and
    /// `sentence_bert_config.json` for the token limit) on the ONNX Runtime library at
    /// `ort_dylib` (`libonnxruntime.so`, >= 1.17), to run on `threads` CPU threads (intra-op).
    /// Blocking: about 0.1–0.3 s. The error names the missing file and how to install it.
    ///
    /// The first load in a process picks the ONNX Runtime library for the process: a later
    /// `ort_dylib` is ignored.
    pub fn load(model_dir: &Path, ort_dylib: &Path, threads: usize) -> Result<Self, LoadError> {
        if let Some(missing) = MODEL_FILES.iter().find(|f| !model_dir.join(f).is_file()) {
            return Err(LoadError(format!(
                "no embedding model in {} ({missing} is missing; SEMANTIC__MODEL_DIR): install it \
                 with scripts/dev or scripts/test (ensure_embedding_model in scripts/lib.sh)",
                model_dir.display()
            )));
        }
        let max_tokens = max_tokens(model_dir)?;
        let mut tokenizer = Tokenizer::from_file(model_dir.join("tokenizer.json"))
            .map_err(|e| LoadError(format!("{}/tokenizer.json: {e}", model_dir.display())))?;
        // The file pads and truncates to 128 (the export's settings); the model reads 256, and
        // padding is done per batch below.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|e| LoadError(format!("tokenizer truncation: {e}")))?;
        tokenizer.with_padding(None);

        let env = environment(ort_dylib)?;
        let threads = threads.max(1);
        let model = model_dir.join("model.onnx");
        let session = Session::builder(&env)
            .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::Level3)?))
            .and_then(|b| Ok(b.with_intra_threads(threads)?))
            .and_then(|b| Ok(b.with_inter_threads(1)?))
            // ONNX Runtime's threads spin for a while after each run, waiting for the next; on
            // 2 cores shared with the rest of the system that steals the CPU the next run
            // needs: with spinning, 36-58 sentences/s under load here, without, 65-116.
            .and_then(|b| Ok(b.with_config_entry("session.intra_op.allow_spinning", "0")?))
            // Memory patterns are planned per input shape and kept: with a new [rows, length]
            // at nearly every call, that is memory that only grows (peak 533 MB with them, 391
            // without, in examples/embed_bench.rs).
            .and_then(|b| Ok(b.with_memory_pattern(false)?))
            .and_then(|mut b| b.commit_from_file(&model))
            .map_err(|e| LoadError(format!("{} does not load: {e}", model.display())))?;

        let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        for needed in ["input_ids", "attention_mask"] {
            if !names.contains(&needed) {
                return Err(LoadError(format!(
                    "{} has no input {needed} (inputs: {names:?}): not a BERT export",
                    model.display()
                )));
            }
        }
        let type_ids = names.contains(&"token_type_ids");
        let output = session
            .outputs()
            .iter()
            .map(|o| o.name())
            .find(|n| *n == "last_hidden_state")
            .or_else(|| session.outputs().first().map(|o| o.name()))
            .map(str::to_owned)
            .ok_or_else(|| LoadError(format!("{} has no output", model.display())))?;

        let mut inner = Inner {
            session: Mutex::new(session),
            tokenizer,
            type_ids,
            output,
            dimensions: 0,
            max_tokens,
            threads,
            dir: model_dir.to_path_buf(),
        };
        // One run now: it proves the model works, gives the dimensions, and takes the first
        // run's set-up cost off the first request.
        let probe = inner
            .run(&["hello".to_string()])
            .map_err(|e| LoadError(format!("{} does not run: {e}", model.display())))?;
        inner.dimensions = probe.vectors.first().map_or(0, Vec::len);
        if inner.dimensions == 0 {
            return Err(LoadError(format!(
                "{} gives empty vectors",
                model.display()
            )));
        }
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The word pieces a text keeps (with `[CLS]` and `[SEP]`); the rest is not read.
    pub fn max_tokens(&self) -> usize {
        self.inner.max_tokens
    }
}

/// `max_seq_length` from sentence-transformers' `sentence_bert_config.json`, when there is one.
fn max_tokens(dir: &Path) -> Result<usize, LoadError> {
    let path = dir.join("sentence_bert_config.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(DEFAULT_MAX_TOKENS);
    };
    let config: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| LoadError(format!("{}: {e}", path.display())))?;
    Ok(config
        .get("max_seq_length")
        .and_then(serde_json::Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n > 2)
        .unwrap_or(DEFAULT_MAX_TOKENS))
}

impl Inner {
    /// Tokenises and embeds `texts` (blocking).
    fn run(&self, texts: &[String]) -> Result<Embeddings, EmbedError> {
        let encodings = texts
            .iter()
            .map(|t| {
                self.tokenizer
                    .encode_fast(t.as_str(), true)
                    .map_err(|e| EmbedError::Failed(format!("tokenizer: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The word pieces of the texts as the model read them (truncated), without the two
        // markers the model adds to each.
        let tokens = encodings
            .iter()
            .map(|e| {
                e.get_special_tokens_mask()
                    .iter()
                    .filter(|s| **s == 0)
                    .count() as u64
            })
            .sum();

        // Short texts with short texts: a batch is padded to its longest.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].len());
        let mut vectors = vec![Vec::new(); encodings.len()];
        let mut start = 0;
        while start < order.len() {
            // Sorted: the last text taken is the longest, the length all are padded to.
            let mut end = start + 1;
            while end < order.len()
                && end - start < BATCH
                && (end - start + 1) * encodings[order[end]].len() <= BATCH_TOKENS
            {
                end += 1;
            }
            let chunk = &order[start..end];
            let batch: Vec<&Encoding> = chunk.iter().map(|&i| &encodings[i]).collect();
            for (&i, vector) in chunk.iter().zip(self.infer(&batch)?) {
                vectors[i] = vector;
            }
            start = end;
        }
        Ok(Embeddings { vectors, tokens })
    }

    /// One model run over `batch`: padded to its longest, mean-pooled over the attention
    /// mask, L2-normalised.
    fn infer(&self, batch: &[&Encoding]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let rows = batch.len();
        let len = batch.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut ids = vec![0i64; rows * len];
        let mut mask = vec![0i64; rows * len];
        for (r, e) in batch.iter().enumerate() {
            for (c, (&id, &m)) in e.get_ids().iter().zip(e.get_attention_mask()).enumerate() {
                ids[r * len + c] = i64::from(id);
                mask[r * len + c] = i64::from(m);
            }
        }
        let failed = |e: ort::Error| EmbedError::Failed(format!("the embedding model: {e}"));
        let shape = [rows, len];
        let mut inputs = vec![
            (
                "input_ids",
                Tensor::from_array((shape, ids)).map_err(failed)?.into_dyn(),
            ),
            (
                "attention_mask",
                Tensor::from_array((shape, mask.clone()))
                    .map_err(failed)?
                    .into_dyn(),
            ),
        ];
        if self.type_ids {
            inputs.push((
                "token_type_ids",
                Tensor::from_array((shape, vec![0i64; rows * len]))
                    .map_err(failed)?
                    .into_dyn(),
            ));
        }

        let mut session = self
            .session
            .lock()
            .map_err(|_| EmbedError::Failed("the embedding model's lock is poisoned".into()))?;
        let outputs = session.run(inputs).map_err(failed)?;
        let (out_shape, hidden) = outputs[self.output.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(failed)?;
        let dims = match **out_shape {
            [r, l, d] if r as usize == rows && l as usize == len && d > 0 => d as usize,
            _ => {
                return Err(EmbedError::Failed(format!(
                    "the embedding model gave shape {out_shape:?} for {rows}x{len} tokens"
                )));
            }
        };

        let mut vectors = Vec::with_capacity(rows);
        for r in 0..rows {
            let mut sum = vec![0f32; dims];
            let mut count = 0f32;
            for c in 0..len {
                if mask[r * len + c] == 0 {
                    continue;
                }
                count += 1.0;
                let at = (r * len + c) * dims;
                sum.iter_mut()
                    .zip(&hidden[at..at + dims])
                    .for_each(|(s, h)| *s += h);
            }
            sum.iter_mut().for_each(|s| *s /= count.max(1.0));
            normalize(&mut sum);
            vectors.push(sum);
        }
        Ok(vectors)
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn provider(&self) -> &str {
        "local"
    }

    fn model(&self) -> &str {
        MODEL
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions
    }

    async fn embed(&self, texts: &[String]) -> Result<Embeddings, EmbedError> {
        check_texts(texts)?;
        let inner = Arc::clone(&self.inner);
        let texts = texts.to_vec();
        tokio::task::spawn_blocking(move || inner.run(&texts))
            .await
            .map_err(|e| EmbedError::Failed(format!("the embedding task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_model_names_the_file_and_the_install_step() {
        let dir = std::env::temp_dir().join(format!("no-model-{}", std::process::id()));
        let Err(e) = LocalEmbedder::load(&dir, Path::new("/nonexistent.so"), 2) else {
            panic!("loaded a model from nowhere");
        };
        let text = e.to_string();
        assert!(text.contains("model.onnx is missing"), "{text}");
        assert!(text.contains("ensure_embedding_model"), "{text}");
    }

    #[test]
    fn max_tokens_falls_back_to_256() {
        let dir = std::env::temp_dir();
        assert_eq!(max_tokens(&dir.join("nowhere")).ok(), Some(256));
    }
}
