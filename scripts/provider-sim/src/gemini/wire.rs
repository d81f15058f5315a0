//! Serde shapes of Gemini's `GenerateContentResponse` and Google API errors, in the API's order.

use serde::Serialize;
use serde_json::Value;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerateContentResponse<'a> {
    pub(super) candidates: Vec<Candidate<'a>>,
    pub(super) usage_metadata: UsageMetadata,
    pub(super) model_version: &'a str,
    pub(super) response_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Candidate<'a> {
    pub(super) content: Content<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) finish_reason: Option<&'static str>,
    pub(super) index: u32,
}

#[derive(Serialize)]
pub(super) struct Content<'a> {
    pub(super) parts: Vec<Part<'a>>,
    pub(super) role: &'static str,
}

#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Part<'a> {
    Text {
        text: String,
        /// `true` on thought-summary parts; absent on answer text.
        #[serde(skip_serializing_if = "Option::is_none")]
        thought: Option<bool>,
    },
    FunctionCall {
        #[serde(rename = "functionCall")]
        function_call: FunctionCall<'a>,
    },
    InlineData {
        #[serde(rename = "inlineData")]
        inline_data: InlineData,
    },
}

/// Media carried inside a part, base64.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct InlineData {
    pub(super) mime_type: &'static str,
    pub(super) data: String,
}

#[derive(Serialize)]
pub(super) struct FunctionCall<'a> {
    pub(super) name: &'a str,
    pub(super) args: Value,
}

/// Token counts; as in proto3 JSON, zero counts are left out.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UsageMetadata {
    pub(super) prompt_token_count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) candidates_token_count: u64,
    pub(super) total_token_count: u64,
    /// The prompt's tokens by modality, when it held more than text.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) prompt_tokens_details: Vec<ModalityTokenCount>,
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) thoughts_token_count: u64,
}

/// Tokens of one modality (`TEXT`, `AUDIO`, …).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ModalityTokenCount {
    pub(super) modality: &'static str,
    pub(super) token_count: u64,
}

// serde's `skip_serializing_if` passes a reference.
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A Google API error: `{"error":{"code":…,"message":…,"status":…}}`.
#[derive(Serialize)]
pub(super) struct ErrorBody {
    pub(super) error: ErrorDetail,
}

#[derive(Serialize)]
pub(super) struct ErrorDetail {
    pub(super) code: u16,
    pub(super) message: String,
    pub(super) status: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) details: Vec<Value>,
}
