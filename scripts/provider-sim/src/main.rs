//! `provider-sim` binary: serves the simulator until SIGINT or SIGTERM.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use provider_sim::{Behaviour, SimConfig, Simulator};
use tracing_subscriber::EnvFilter;

/// Local stand-in for LLM provider APIs (OpenAI Chat Completions, Anthropic Messages, Google
/// Gemini) and their batch APIs, text-to-speech APIs (OpenAI, ElevenLabs, Gemini) and
/// speech-to-text APIs (OpenAI, Deepgram, Gemini) and OpenAI embeddings, with scriptable
/// failures.
#[derive(Parser, Debug)]
#[command(
    name = "provider-sim",
    version,
    after_help = "\
Endpoints (base URLs: OpenAI http://ADDR/v1; Anthropic, Gemini, ElevenLabs, Deepgram http://ADDR):
  POST /v1/chat/completions, /chat/completions       OpenAI Chat Completions
  POST /v1/messages                                  Anthropic Messages
  POST /v1beta/models/{model}:streamGenerateContent  Gemini (?alt=sse for SSE, else a JSON array)
  POST /v1beta/models/{model}:generateContent        Gemini, not streamed
      with generationConfig.responseModalities [\"AUDIO\"]: Gemini TTS (24 kHz PCM inlineData)
      with an audio inlineData part: the transcript as text when a text part asks to
      transcribe, else \"I heard N bytes of audio/wav (D s).\" (audio understanding)
  POST /v1/audio/speech, /audio/speech               OpenAI TTS (pcm, wav, mp3 as silent frames;
                                                     stream_format \"sse\" for speech.audio.* events)
  POST /v1/text-to-speech/{voice_id}[/stream]        ElevenLabs TTS (?output_format=pcm_24000, ...)
  GET  /v1/text-to-speech/{voice_id}/stream-input    ElevenLabs TTS WebSocket (input streaming)
  POST /v1/audio/transcriptions, /v1/audio/translations
                                                     OpenAI STT (multipart; json, text, srt, vtt,
                                                     verbose_json; stream=true for gpt-*-transcribe)
  POST /v1/embeddings, /embeddings                   OpenAI embeddings (text-embedding-3-small/-large,
                                                     ada-002; hashed bag of words, float or base64)
  POST /v1/listen                                    Deepgram STT of a recording (audio body)
  GET  /v1/listen                                    Deepgram live STT WebSocket (?encoding=linear16
                                                     &sample_rate=16000&interim_results=true, ...)
  POST /v1/images/generations, /images/generations  OpenAI and xAI images (gpt-image-*, dall-e-*,
                                                     grok-2-image; b64_json, or a url served at
                                                     GET /_sim/files/{id})
  POST /v1/flux-2-pro, /v1/flux-kontext-pro, ...     Flux tasks (x-key), polled at
  GET  /v1/get_result?id=...                         (--job-polls Pending answers, then Ready)
  POST /v2beta/stable-image/generate/{core,sd3,ultra}  Stability (multipart; image/* or JSON)
  POST /v1/generation/stable-diffusion-xl-1024-v1-0/text-to-image  Stability SDXL
  POST /v1beta/models/{model}:generateContent        with an image model or responseModalities
                                                     [\"IMAGE\"]: Gemini images (inlineData PNG)
  POST /v1beta/models/imagen-*:predict               Imagen (predictions, base64)
  POST /v1/files, GET|DELETE /v1/files/{id}, GET /v1/files/{id}/content
                                                     OpenAI Files (a batch's JSONL input, its
                                                     output and error files)
  POST|GET /v1/batches, GET /v1/batches/{id}, POST /v1/batches/{id}/cancel
                                                     OpenAI Batches (/v1/chat/completions lines)
  POST|GET /v1/messages/batches, GET /v1/messages/batches/{id}[/results],
  POST /v1/messages/batches/{id}/cancel              Anthropic Message Batches
  POST /v1beta/models/{model}:batchGenerateContent, GET /v1beta/batches[/{id}],
  POST /v1beta/batches/{id}:cancel                   Gemini Batch Mode (inline requests)
      batches advance one step per poll (--job-polls running polls); a request whose user
      message contains \"fail_line\" fails alone
  POST /_sim/script     queue behaviours: one or an array of {\"kind\": ...} objects
  GET  /_sim/requests   requests served so far, with the API format and key received
  GET  /health

Speech to text hears --transcript in any audio: an upload holds it once, its words sharing the
audio's duration (read from a WAV header, an MP3 frame, a stated raw layout, else 128 kbit/s);
a live stream repeats it, one word per --live-word-ms of audio received."
)]
struct Args {
    /// Address to listen on; port 0 picks a free port (the bound address is printed on stdout).
    #[arg(long, env = "PROVIDER_SIM_ADDR", default_value = "127.0.0.1:9100")]
    addr: SocketAddr,
    /// Milliseconds before the first content chunk (opening events such as OpenAI's role chunk
    /// or Anthropic's message_start are sent at once).
    #[arg(long, env = "PROVIDER_SIM_FIRST_TOKEN_DELAY_MS", default_value_t = 0)]
    first_token_delay_ms: u64,
    /// Number of content chunks per reply.
    #[arg(long, env = "PROVIDER_SIM_CHUNKS", default_value_t = 5)]
    chunks: usize,
    /// Milliseconds between content chunks.
    #[arg(long, env = "PROVIDER_SIM_CHUNK_INTERVAL_MS", default_value_t = 0)]
    chunk_interval_ms: u64,
    /// Text carried by every content chunk.
    #[arg(long, env = "PROVIDER_SIM_CHUNK_TEXT", default_value = "tok ")]
    chunk_text: String,
    /// Behaviour when no behaviour is scripted (see `POST /_sim/script`).
    #[arg(long, env = "PROVIDER_SIM_BEHAVIOUR", value_enum, default_value_t = Kind::Normal)]
    behaviour: Kind,
    /// `Retry-After` seconds for `--behaviour rate-limited`.
    #[arg(long, env = "PROVIDER_SIM_RETRY_AFTER_SECS", default_value_t = 1)]
    retry_after_secs: u64,
    /// Chunks sent before the failure for `drop-mid-stream`, `malformed-line`, `bad-audio` and
    /// `error-event`.
    #[arg(long, env = "PROVIDER_SIM_AFTER_CHUNKS", default_value_t = 2)]
    after_chunks: usize,
    /// Milliseconds of simulated speech per input character (text to speech, speed 1.0).
    #[arg(long, env = "PROVIDER_SIM_SPEECH_MS_PER_CHAR", default_value_t = 60)]
    speech_ms_per_char: u64,
    /// Milliseconds of audio per streamed chunk (text to speech).
    #[arg(long, env = "PROVIDER_SIM_AUDIO_CHUNK_MS", default_value_t = 100)]
    audio_chunk_ms: u64,
    /// What speech to text hears in any audio: an upload holds it once, its words sharing the
    /// audio's duration evenly; a live stream repeats it, one word per --live-word-ms.
    #[arg(
        long,
        env = "PROVIDER_SIM_TRANSCRIPT",
        default_value = "The quick brown fox jumps over the lazy dog."
    )]
    transcript: String,
    /// Milliseconds of audio per word in a live speech-to-text stream (Deepgram WebSocket).
    #[arg(long, env = "PROVIDER_SIM_LIVE_WORD_MS", default_value_t = 400)]
    live_word_ms: u64,
    /// Milliseconds without audio or a message before a live speech-to-text stream is closed
    /// with Deepgram's NET-0001 error.
    #[arg(
        long,
        env = "PROVIDER_SIM_LIVE_IDLE_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    live_idle_timeout_ms: u64,
    /// Polls of an asynchronous job (a Flux task, a video, a provider batch) answered as still
    /// running before it ends.
    #[arg(long, env = "PROVIDER_SIM_JOB_POLLS", default_value_t = 2)]
    job_polls: usize,
    /// Bytes of a video sent before the connection is cut, for `download-drop`.
    #[arg(long, env = "PROVIDER_SIM_AFTER_BYTES", default_value_t = 1024)]
    after_bytes: usize,
    /// Sora's `openai-poll-after-ms` header, in milliseconds.
    #[arg(long, env = "PROVIDER_SIM_POLL_AFTER_MS", default_value_t = 100)]
    poll_after_ms: u64,
    /// Size in bytes of a generated video.
    #[arg(long, env = "PROVIDER_SIM_VIDEO_BYTES", default_value_t = 65_536)]
    video_bytes: usize,
    /// KlingAI access key (the JWT's `iss`).
    #[arg(
        long,
        env = "PROVIDER_SIM_KLING_ACCESS_KEY",
        default_value = "sim-kling-access"
    )]
    kling_access_key: String,
    /// KlingAI secret key (the JWT's HS256 key).
    #[arg(
        long,
        env = "PROVIDER_SIM_KLING_SECRET_KEY",
        default_value = "sim-kling-secret"
    )]
    kling_secret_key: String,
}

/// Flag-friendly names of the behaviours; their parameters come from separate flags.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kind {
    Normal,
    ServerError,
    RateLimited,
    DropMidStream,
    MalformedLine,
    /// An audio chunk whose base64 does not decode (text to speech).
    BadAudio,
    /// The format's own mid-stream error (Anthropic's `error` event, an error chunk otherwise).
    ErrorEvent,
    /// The provider's safety-system refusal (image APIs; a job ends filtered).
    ContentFiltered,
    /// A video job or batch ends failed with the provider's error.
    JobFailed,
    /// A video job or batch never leaves its running state.
    JobStuck,
    /// A video job or batch completes but its download is cut after --after-bytes bytes.
    DownloadDrop,
}

impl Args {
    fn config(&self) -> SimConfig {
        let behaviour = match self.behaviour {
            Kind::Normal => Behaviour::Normal,
            Kind::ServerError => Behaviour::ServerError,
            Kind::RateLimited => Behaviour::RateLimited {
                retry_after_secs: self.retry_after_secs,
            },
            Kind::DropMidStream => Behaviour::DropMidStream {
                after_chunks: self.after_chunks,
            },
            Kind::MalformedLine => Behaviour::MalformedLine {
                after_chunks: self.after_chunks,
            },
            Kind::BadAudio => Behaviour::BadAudio {
                after_chunks: self.after_chunks,
            },
            Kind::ErrorEvent => Behaviour::ErrorEvent {
                after_chunks: self.after_chunks,
            },
            Kind::ContentFiltered => Behaviour::ContentFiltered,
            Kind::JobFailed => Behaviour::JobFailed,
            Kind::JobStuck => Behaviour::JobStuck,
            Kind::DownloadDrop => Behaviour::DownloadDrop {
                after_bytes: self.after_bytes,
            },
        };
        SimConfig {
            first_token_delay: Duration::from_millis(self.first_token_delay_ms),
            chunks: self.chunks,
            chunk_interval: Duration::from_millis(self.chunk_interval_ms),
            chunk_text: self.chunk_text.clone(),
            behaviour,
            speech_per_char: Duration::from_millis(self.speech_ms_per_char),
            audio_chunk: Duration::from_millis(self.audio_chunk_ms),
            transcript: self.transcript.clone(),
            live_word: Duration::from_millis(self.live_word_ms),
            live_idle_timeout: Duration::from_millis(self.live_idle_timeout_ms),
            job_polls: self.job_polls,
            poll_after: Duration::from_millis(self.poll_after_ms),
            video_bytes: self.video_bytes,
            kling_access_key: self.kling_access_key.clone(),
            kling_secret_key: self.kling_secret_key.clone(),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();
    let sim = Simulator::start_on(args.addr, args.config())
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    announce(sim.addr());
    wait_for_signal().await?;
    tracing::info!("stopping");
    sim.shutdown().await;
    Ok(())
}

/// Scripts that start the binary with `--addr 127.0.0.1:0` read the chosen address from here.
#[allow(clippy::print_stdout)]
fn announce(addr: SocketAddr) {
    println!("{addr}");
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}
