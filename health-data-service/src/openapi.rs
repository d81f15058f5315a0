//! The OpenAPI document of the REST API, served at `/docs/openapi.json` and rendered at `/docs`.

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::routes;

/// The REST envelope every body uses (documentation of `common::error::ApiEnvelope`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    /// The HTTP status, repeated.
    pub code: u16,
    /// Whether the request succeeded.
    pub success: bool,
    /// A sentence for people.
    pub message: String,
    /// The payload (`null` on most errors).
    pub data: T,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "health-data-service",
        description = "Garmin, blood-test and UFC data: imports, datasets, analyses. Every \
            /api/v1/health path needs `Authorization: Bearer <JWT>` and reaches only the \
            caller's own data (another user's or tenant's is 404). Bodies use the envelope \
            {code, success, message, data}. See docs/health.md."
    ),
    modifiers(&BearerAuth),
    paths(
        routes::probes::health,
        routes::probes::ready,
        routes::summary::summary,
        routes::garmin::status,
        routes::garmin::daily,
        routes::garmin::sleep,
        routes::garmin::hrv,
        routes::garmin::body,
        routes::garmin::activities,
        routes::garmin::activity,
        routes::garmin::sleep_vs_load,
        routes::garmin::weekly,
        routes::garmin::import,
        routes::garmin::imports,
        routes::garmin::import_job,
        routes::blood::import,
        routes::blood::panels,
        routes::blood::panel,
        routes::blood::markers,
        routes::blood::marker_names,
        routes::blood::trend,
        routes::ufc::import_fighters,
        routes::ufc::import_fights,
        routes::ufc::fighters,
        routes::ufc::fighter,
        routes::ufc::follow,
        routes::ufc::unfollow,
        routes::ufc::events,
        routes::ufc::event,
        routes::ufc::subscriptions,
    ),
    tags(
        (name = "garmin", description = "daily summaries, sleep, activities, HRV, body composition; imports; analyses"),
        (name = "blood", description = "blood-test panels and markers"),
        (name = "ufc", description = "the tenant's UFC catalogue and the caller's subscriptions"),
        (name = "summary", description = "the latest of everything"),
        (name = "probes", description = "liveness and readiness"),
    )
)]
pub struct ApiDoc;
