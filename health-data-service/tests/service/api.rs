//! The HTTP surface as a whole: probes, the OpenAPI document (every documented path is routed and
//! needs a token), refused tokens, and the demo command's idempotency.

use std::time::Duration;

use common::auth::{Claims, JwtAuth, Role};
use common::testing::TEST_SECRET;
use serde_json::Value;
use uuid::Uuid;

use crate::support::{Caller, Service};

#[tokio::test]
async fn probes_docs_and_tokens() {
    let service = Service::start().await;
    let http = &service.http;
    let health: Value = http
        .get(format!("{}/health", service.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["data"]["status"], "ok");
    let ready: Value = http
        .get(format!("{}/ready", service.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["data"]["dependencies"]["postgres"]["ok"], true);
    assert_eq!(ready["data"]["dependencies"]["redis"]["required"], true);
    let page = http
        .get(format!("{}/docs", service.base))
        .send()
        .await
        .unwrap();
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert!(html.contains("health-data-service"));
    // The page's only script is pinned to a version and checked by its integrity hash.
    assert!(html.contains("@scalar/api-reference@1.76.0/"), "{html}");
    assert!(html.contains("integrity=\"sha384-"), "{html}");

    let spec: Value = http
        .get(format!("{}/docs/openapi.json", service.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.len() >= 25, "{}", paths.len());
    let id = Uuid::now_v7().to_string();
    let mut checked = 0;
    for (path, methods) in paths {
        if !path.starts_with("/api/v1/health") {
            continue;
        }
        let concrete = path.replace("{id}", &id);
        for method in methods.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = http
                .request(method.clone(), format!("{}{concrete}", service.base))
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                401,
                "{method} {path} is documented, routed, and needs a token"
            );
            let body: Value = r.json().await.unwrap();
            assert_eq!(
                (body["code"].as_u64(), body["success"].as_bool()),
                (Some(401), Some(false))
            );
            checked += 1;
        }
    }
    assert!(checked >= 28, "{checked}");

    let me = Caller::new();
    let status = |token: String| {
        let url = format!("{}/api/v1/health/garmin/status", service.base);
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(status(me.token.clone()).await, 200);
    assert_eq!(status("garbage".into()).await, 401);
    let other_key = JwtAuth::hs256(b"another secret")
        .issue(me.user, me.tenant, Role::User, Duration::from_secs(60))
        .unwrap();
    assert_eq!(status(other_key).await, 401);
    let expired = JwtAuth::hs256(TEST_SECRET.as_bytes())
        .sign(&Claims {
            sub: me.user,
            tenant_id: me.tenant,
            role: Role::User,
            exp: 1,
            nbf: None,
        })
        .unwrap();
    assert_eq!(status(expired).await, 401);
    let (status, body) = service.get(&me, "/no/such/thing").await;
    assert_eq!(
        (status.as_u16(), body["success"].as_bool()),
        (404, Some(false))
    );
    service.stop().await;
}

#[tokio::test]
async fn the_demo_data_set_is_realistic_and_written_once() {
    let service = Service::start().await;
    let me = Caller::new();
    let owner = health_data_service::scope::Owner::new(me.tenant, me.user);
    let pool = sqlx::PgPool::connect(service.core.database_url.expose())
        .await
        .unwrap();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
    let first = health_data_service::demo::generate(&pool, owner, today)
        .await
        .unwrap();
    let d = &first.datasets;
    assert_eq!(
        (
            d["daily_summaries"].inserted,
            d["sleep"].inserted,
            d["hrv"].inserted
        ),
        (90, 90, 90)
    );
    assert!(
        (30..=50).contains(&d["activities"].inserted),
        "{:?}",
        d["activities"]
    );
    assert_eq!(
        d["blood_markers"].inserted, 45,
        "three panels of 15 markers"
    );
    assert_eq!(d["ufc_subscriptions"].inserted, 2);
    let again = health_data_service::demo::generate(&pool, owner, today)
        .await
        .unwrap();
    for (dataset, counts) in &again.datasets {
        assert_eq!(
            (counts.inserted, counts.updated),
            (0, 0),
            "{dataset}: {counts:?}"
        );
    }

    let status = service.data(&me, "/garmin/status").await;
    assert_eq!(status["daily_summaries"]["last_date"], "2026-11-22");
    let flagged = service.data(&me, "/blood/markers?out_of_range=true").await;
    assert!(
        !flagged["items"].as_array().unwrap().is_empty(),
        "some markers are out of range"
    );
    let weeks = service
        .data(&me, "/garmin/analysis/weekly?from=2026-10-01&to=2026-11-22")
        .await;
    for w in weeks.as_array().unwrap().iter().filter(|w| w["days"] == 7) {
        let steps = w["avg_steps"].as_f64().unwrap();
        assert!((6000.0..13000.0).contains(&steps), "{w}");
    }
    assert_eq!(
        service.data(&me, "/ufc/subscriptions").await["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    service.stop().await;
}

#[tokio::test]
async fn a_nul_or_an_oversized_query_parameter_is_400_naming_it() {
    let service = Service::start().await;
    let me = Caller::new();
    // PostgreSQL refuses NUL in text: each of these reached it and answered 500.
    for (path, param) in [
        ("/garmin/activities?type=%00", "type"),
        ("/garmin/sleep?cursor=%00", "cursor"),
        ("/ufc/fighters?q=%00", "q"),
        ("/ufc/fighters?division=light%00weight", "division"),
        ("/ufc/fighters?stance=%00", "stance"),
        ("/ufc/fighters?country=%00", "country"),
        ("/ufc/events?q=%00", "q"),
        ("/blood/panels?lab=%00", "lab"),
        ("/blood/markers?marker=%00", "marker"),
        ("/blood/markers?category=%00", "category"),
        ("/blood/markers?flag=%00", "flag"),
        ("/blood/markers/trend?marker=%00", "marker"),
    ] {
        let (status, body) = service.get(&me, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(
            (body["success"].clone(), body["message"].clone()),
            (
                Value::Bool(false),
                Value::from(format!("{param} must not contain a NUL character"))
            ),
            "{path}"
        );
    }
    let (status, body) = service.get(&me, "/ufc/fighters?q=a%07b").await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "q must not contain control characters (only tab is allowed)"
    );
    // A cursor is opaque, but its decoded text reached the fighter list's SQL.
    let cursor = health_data_service::page::encode(&format!("a\0b|{}", Uuid::now_v7()));
    let (status, body) = service
        .get(&me, &format!("/ufc/fighters?cursor={cursor}"))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "cursor is not a valid cursor");

    // Free text is bounded: 200 characters (a cursor 2000).
    let long = "a".repeat(201);
    for (path, param, max) in [
        (format!("/ufc/fighters?q={long}"), "q", 200),
        (format!("/blood/markers/trend?marker={long}"), "marker", 200),
        (format!("/garmin/activities?type={long}"), "type", 200),
        (
            format!("/garmin/daily-summaries?cursor={}", "A".repeat(2001)),
            "cursor",
            2000,
        ),
    ] {
        let (status, body) = service.get(&me, &path).await;
        assert_eq!(status, 400, "{param}: {body}");
        assert_eq!(
            body["message"],
            format!("{param} is longer than {max} characters")
        );
    }
    let (status, body) = service
        .get(&me, &format!("/ufc/fighters?q={}", "a".repeat(200)))
        .await;
    assert_eq!(
        (status.as_u16(), body["data"]["items"].clone()),
        (200, serde_json::json!([]))
    );
    service.stop().await;
}
