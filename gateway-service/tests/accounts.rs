//! Accounts and roles through the HTTP API: register, login, me, admin-created users, the admin
//! endpoints and their 403 for ordinary users, and token usage after a chat turn.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Opts, System, WAIT};
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery";

/// An email no other test (or earlier run) uses.
fn email(name: &str) -> String {
    format!("{name}@acme-{}.example", Uuid::now_v7().simple())
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(system: &System) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: system.http.clone(),
        }
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// Registers and returns the new user.
    async fn register(&self, token: Option<&str>, body: Value) -> Value {
        let (status, body) = self.post("/auth/register", token, body).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(
            (body["code"].as_u64(), body["success"].as_bool()),
            (Some(201), Some(true))
        );
        body["data"].clone()
    }

    /// Logs in and returns the token.
    async fn login(&self, email: &str, password: &str) -> String {
        let (status, body) = self
            .post(
                "/auth/login",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["data"]["token"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn register_login_and_me() {
    let system = System::start(Opts::new()).await;
    let api = Api::new(&system);
    let email = email("ann");
    let user = api
        .register(
            None,
            json!({"email": email, "password": PASSWORD, "display_name": "Ann"}),
        )
        .await;
    assert_eq!(user["email"], email);
    assert_eq!(
        user["role"], "admin",
        "the first user of a new tenant is its admin"
    );
    assert_eq!(user["display_name"], "Ann");
    assert!(user.get("password_hash").is_none() && user.get("password").is_none());

    // Login ignores the email's case.
    let (status, body) = api
        .post(
            "/auth/login",
            None,
            json!({"email": email.to_uppercase(), "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(data["token_type"], "Bearer");
    assert_eq!(data["expires_in"], 86_400);
    assert_eq!(data["user"]["id"], user["id"]);
    assert_eq!(data["user"]["tenant_id"], user["tenant_id"]);
    assert_eq!(data["user"]["role"], "admin");
    let token = data["token"].as_str().unwrap();

    let (status, me) = api.get("/auth/me", token).await;
    assert_eq!(status, 200, "{me}");
    let me = &me["data"];
    assert_eq!((&me["id"], &me["email"]), (&user["id"], &user["email"]));
    assert_eq!(
        (&me["tenant_id"], &me["role"]),
        (&user["tenant_id"], &json!("admin"))
    );
    assert_eq!(
        (&me["display_name"], &me["registered"]),
        (&json!("Ann"), &json!(true))
    );

    // The issued token works on the rest of the API, as an admin.
    let (status, models) = api.get("/api/v1/models", token).await;
    assert_eq!(status, 200, "{models}");
}

#[tokio::test]
async fn failed_logins_do_not_tell_which_emails_exist() {
    let system = System::start(Opts::new()).await;
    let api = Api::new(&system);
    let email = email("bea");
    api.register(None, json!({"email": email, "password": PASSWORD}))
        .await;
    let (wrong_status, wrong) = api
        .post(
            "/auth/login",
            None,
            json!({"email": email, "password": "not the password"}),
        )
        .await;
    let (unknown_status, unknown) = api
        .post(
            "/auth/login",
            None,
            json!({"email": format!("nobody-{email}"), "password": PASSWORD}),
        )
        .await;
    assert_eq!((wrong_status, unknown_status), (401, 401));
    assert_eq!(wrong["message"], "invalid email or password");
    assert_eq!(wrong, unknown, "the same answer for both");
    assert_eq!(wrong["success"], false);
}

#[tokio::test]
async fn registration_is_validated_and_emails_are_unique() {
    let system = System::start(Opts::new()).await;
    let api = Api::new(&system);
    let (status, body) = api
        .post(
            "/auth/register",
            None,
            json!({"email": "not-an-email", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("email"),
        "{body}"
    );
    let (status, body) = api
        .post(
            "/auth/register",
            None,
            json!({"email": email("cy"), "password": "short"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "password must be at least 8 characters");

    let email = email("cy");
    api.register(None, json!({"email": email, "password": PASSWORD}))
        .await;
    let (status, body) = api
        .post(
            "/auth/register",
            None,
            json!({"email": email.to_uppercase(), "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        (body["code"].as_u64(), body["success"].as_bool()),
        (Some(409), Some(false))
    );
    assert_eq!(body["message"], "an account with this email already exists");
}

#[tokio::test]
async fn an_admin_creates_users_in_their_tenant_and_users_cannot_administer() {
    let system = System::start(Opts::new()).await;
    let api = Api::new(&system);
    let admin_email = email("dee");
    let admin = api
        .register(
            None,
            json!({"email": admin_email, "password": PASSWORD, "tenant_name": "Dee's team"}),
        )
        .await;
    let admin_token = api.login(&admin_email, PASSWORD).await;

    let user_email = email("eve");
    let user = api
        .register(
            Some(&admin_token),
            json!({"email": user_email, "password": PASSWORD, "display_name": "Eve"}),
        )
        .await;
    assert_eq!(user["tenant_id"], admin["tenant_id"]);
    assert_eq!(user["role"], "user");
    let second_admin = api
        .register(
            Some(&admin_token),
            json!({"email": email("fay"), "password": PASSWORD, "role": "admin"}),
        )
        .await;
    assert_eq!(second_admin["role"], "admin");
    assert_eq!(second_admin["tenant_id"], admin["tenant_id"]);

    let (status, users) = api.get("/api/v1/admin/users", &admin_token).await;
    assert_eq!(status, 200, "{users}");
    let emails: Vec<&str> = users["data"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails.len(), 3, "{users}");
    assert!(emails.contains(&admin_email.as_str()) && emails.contains(&user_email.as_str()));

    // The ordinary user: no user creation, no admin endpoints; the rest works.
    let user_token = api.login(&user_email, PASSWORD).await;
    let (status, body) = api
        .post(
            "/auth/register",
            Some(&user_token),
            json!({"email": email("gus"), "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    for path in ["/api/v1/admin/users", "/api/v1/admin/usage"] {
        let (status, body) = api.get(path, &user_token).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(body["success"], false);
    }
    let (status, me) = api.get("/auth/me", &user_token).await;
    assert_eq!((status, &me["data"]["role"]), (200, &json!("user")));

    // A bad token on register is refused, not treated as anonymous.
    let (status, _) = api
        .post(
            "/auth/register",
            Some("garbage"),
            json!({"email": email("hal"), "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn me_of_a_token_without_an_account_returns_its_claims() {
    let system = System::start(Opts::new()).await;
    let api = Api::new(&system);
    let tenant = Uuid::now_v7();
    let (status, me) = api.get("/auth/me", &system.token(tenant)).await;
    assert_eq!(status, 200, "{me}");
    let me = &me["data"];
    assert_eq!(me["tenant_id"], tenant.to_string());
    assert_eq!(
        (&me["role"], &me["registered"]),
        (&json!("user"), &json!(false))
    );
    assert!(me["email"].is_null() && me["id"].is_string());
}

#[tokio::test]
async fn admin_usage_counts_the_tenants_chat_turns() {
    let system = System::start(Opts::new()).await;
    let api = Api::new(&system);
    let email = email("ida");
    api.register(None, json!({"email": email, "password": PASSWORD}))
        .await;
    let token = api.login(&email, PASSWORD).await;

    let (status, empty) = api.get("/api/v1/admin/usage", &token).await;
    assert_eq!(status, 200, "{empty}");
    assert_eq!(empty["data"]["totals"]["messages"], 0);

    let (status, chat) = api
        .post("/chat", Some(&token), json!({"prompt": "count my tokens"}))
        .await;
    assert_eq!(status, 200, "{chat}");
    let usage = &chat["data"]["usage"];

    // The worker stores the turn around its completion; wait until the report shows it.
    let deadline = tokio::time::Instant::now() + WAIT;
    let report = loop {
        let (status, report) = api.get("/api/v1/admin/usage", &token).await;
        assert_eq!(status, 200, "{report}");
        if report["data"]["totals"]["messages"] == 1 {
            break report["data"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "usage never showed the turn: {report}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let totals = &report["totals"];
    assert_eq!(
        totals["input_tokens"], usage["input_tokens"],
        "{report} vs {usage}"
    );
    assert_eq!(totals["output_tokens"], usage["output_tokens"]);
    assert!(totals["output_tokens"].as_i64().unwrap() > 0);
    let by_model = report["by_model"].as_array().unwrap();
    assert_eq!(by_model.len(), 1, "{report}");
    assert_eq!(by_model[0]["provider"], "dummy");
    assert_eq!(by_model[0]["model"], chat["data"]["model"]["model"]);

    // A range after the turn is empty; a bad bound is a 400.
    let (_, later) = api
        .get("/api/v1/admin/usage?from=2999-01-01T00:00:00Z", &token)
        .await;
    assert_eq!(later["data"]["totals"]["messages"], 0, "{later}");
    let (status, bad) = api.get("/api/v1/admin/usage?to=yesterday", &token).await;
    assert_eq!(status, 400, "{bad}");

    // Another tenant's admin sees none of it.
    let (_, other) = api
        .get("/api/v1/admin/usage", &system.admin_token(Uuid::now_v7()))
        .await;
    assert_eq!(other["data"]["totals"]["messages"], 0);
}
