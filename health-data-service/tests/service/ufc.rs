//! UFC: the admin CSV imports (all or nothing), fighter and event lists with filters and
//! pagination, details, subscriptions, and the catalogue staying with its tenant.

use serde_json::{Value, json};

use crate::support::{Caller, Service, fixture};

async fn with_catalogue() -> (Service, Caller) {
    let service = Service::start().await;
    let admin = Caller::new().admin();
    let (status, body) = service
        .post_body(&admin, "/ufc/fighters/import", fixture("ufc/fighters.csv"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["rows"]["inserted"], 6);
    let (status, body) = service
        .post_body(&admin, "/ufc/fights/import", fixture("ufc/fights.csv"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["data"]["rows"]["inserted"].clone(),
            body["data"]["events_created"].clone()
        ),
        (json!(4), json!(2))
    );
    (service, admin)
}

fn names(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn imports_are_for_admins_and_all_or_nothing() {
    let (service, admin) = with_catalogue().await;
    let user = admin.colleague();
    let (status, _) = service
        .post_body(&user, "/ufc/fighters/import", fixture("ufc/fighters.csv"))
        .await;
    assert_eq!(status, 403);
    let (status, body) = service
        .post_body(&admin, "/ufc/fighters/import", fixture("ufc/fighters.csv"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"]["rows"]["unchanged"], 6,
        "a re-import changes nothing"
    );
    let bad = b"event,event_date,fighter_a,fighter_b,winner\n\
        Fight Night Oslo,2025-06-01,Ana Lima,Carla Nyberg,Ana Lima\n\
        Fight Night Oslo,2025-06-01,Ana Lima,Nobody Known,\n\
        Fight Night Oslo,2025-06-02,Bo Chan,Bo Chan,\n";
    let (status, body) = service
        .post_body(&admin, "/ufc/fights/import", bad.to_vec())
        .await;
    assert_eq!(status, 422, "{body}");
    let errors: Vec<(u64, &str)> = body["data"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["column"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errors,
        [(3, "fighter_b"), (4, "event_date"), (4, "fighter_b")]
    );
    let events = service.data(&user, "/ufc/events?q=oslo").await;
    assert_eq!(
        events["items"],
        json!([]),
        "nothing of the rejected file was written"
    );
    service.stop().await;
}

/// `(line, column, message)` of every error of a rejected import.
fn rejected(body: &Value) -> Vec<(u64, String, String)> {
    body["data"]["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("not a rejected import: {body}"))
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["column"].as_str().unwrap_or_default().to_owned(),
                e["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn fighter_numbers_must_be_finite_and_in_range_and_text_bounded() {
    let service = Service::start().await;
    let admin = Caller::new().admin();
    let header = "name,nickname,division,wins,losses,height_cm,reach_cm,stance,date_of_birth,\
        sig_strikes_per_min,strike_accuracy_pct,takedown_avg,takedown_accuracy_pct,submission_avg";
    let rows = [
        "Gus Okoye,Tank,Flyweight,1,0,170,175,Orthodox,1990-01-01,4,50,1,40,0.5".to_owned(),
        "Bo Inf,,,,,inf,,,,,,,,".to_owned(),
        "Cy Neg,,,,,,-inf,,,,,,,".to_owned(),
        "Di Nan,,,,,,,,,NaN,,,,".to_owned(),
        "Ed Big,,,,,,,,,,1e308,,,".to_owned(),
        "Fa Pct,,,,,,,,,,,-0.5,101,".to_owned(),
        "Gi Tall,,,,,300,0,,,,,,,1e308".to_owned(),
        "Ha Rec,,,5000,-1,,,,2999-01-01,,,,,".to_owned(),
        format!("{},,,,,,,,,,,,,", "N".repeat(201)),
        "Io Nul,Big\0Guy,,,,,,,,,,,,".to_owned(),
        format!("Jo Stance,,,,,,,{},,,,,,", "s".repeat(101)),
    ];
    let csv = format!("{header}\n{}\n", rows.join("\n"));
    let (status, body) = service
        .post_body(&admin, "/ufc/fighters/import", csv.into_bytes())
        .await;
    assert_eq!(status, 422, "{body}");
    let expected: Vec<(u64, &str, &str)> = vec![
        (3, "height_cm", "height_cm must be a finite number"),
        (4, "reach_cm", "reach_cm must be a finite number"),
        (
            5,
            "sig_strikes_per_min",
            "sig_strikes_per_min must be a finite number",
        ),
        (
            6,
            "strike_accuracy_pct",
            "strike_accuracy_pct must be between 0 and 100",
        ),
        (7, "takedown_avg", "takedown_avg must be between 0 and 1000"),
        (
            7,
            "takedown_accuracy_pct",
            "takedown_accuracy_pct must be between 0 and 100",
        ),
        (8, "height_cm", "height_cm must be between 100 and 250"),
        (8, "reach_cm", "reach_cm must be between 100 and 275"),
        (
            8,
            "submission_avg",
            "submission_avg must be between 0 and 1000",
        ),
        (9, "wins", "wins must be between 0 and 1000"),
        (9, "losses", "losses must be between 0 and 1000"),
        (
            9,
            "date_of_birth",
            "date_of_birth must be between 1900-01-01 and today",
        ),
        (10, "name", "name is longer than 200 characters"),
        (11, "nickname", "nickname must not contain a NUL character"),
        (12, "stance", "stance is longer than 100 characters"),
    ];
    let expected: Vec<(u64, String, String)> = expected
        .into_iter()
        .map(|(l, c, m)| (l, c.to_owned(), m.to_owned()))
        .collect();
    assert_eq!(rejected(&body), expected);
    assert_eq!(
        service.data(&admin, "/ufc/fighters").await["items"],
        json!([]),
        "nothing of the rejected file was written"
    );
    service.stop().await;
}

#[tokio::test]
async fn fight_rows_with_nul_oversized_text_or_impossible_numbers_are_rejected() {
    let (service, admin) = with_catalogue().await;
    let header = "event,event_date,location,fighter_a,fighter_b,winner,method,round,time,\
        weight_class,title_fight,bout_order";
    let rows = [
        "Fight Night Oslo,2025-06-01,Oslo,Ana Lima,Bo Chan,Ana Lima,KO\0TKO,2,3:41,,,1".to_owned(),
        "Fight Night Oslo,2025-06-01,Oslo,Carla Nyberg,Dana Okafor,,,0,,,,-1".to_owned(),
        format!(
            "{},2025-06-01,,Eli Santos,Femi Adeyemi,,,,,,,",
            "E".repeat(201)
        ),
        "Fight Night Oslo,2025-06-01,Oslo,Eli Santos,Bo Chan,,,,12:34:56:789,,,".to_owned(),
    ];
    let csv = format!("{header}\n{}\n", rows.join("\n"));
    let (status, body) = service
        .post_body(&admin, "/ufc/fights/import", csv.into_bytes())
        .await;
    assert_eq!(status, 422, "{body}");
    let expected: Vec<(u64, &str, &str)> = vec![
        (2, "method", "method must not contain a NUL character"),
        (3, "round", "round must be between 1 and 10"),
        (3, "bout_order", "bout_order must be between 1 and 100"),
        (4, "event", "event is longer than 200 characters"),
        (5, "time", "time is longer than 10 characters"),
    ];
    let expected: Vec<(u64, String, String)> = expected
        .into_iter()
        .map(|(l, c, m)| (l, c.to_owned(), m.to_owned()))
        .collect();
    assert_eq!(rejected(&body), expected);
    let events = service.data(&admin, "/ufc/events?q=oslo").await;
    assert_eq!(events["items"], json!([]), "nothing was written");
    service.stop().await;
}

#[tokio::test]
async fn fighters_and_events_filter_paginate_and_show_details() {
    let (service, admin) = with_catalogue().await;
    let me = admin.colleague();
    assert_eq!(
        names(&service.data(&me, "/ufc/fighters?division=flyweight").await),
        ["Ana Lima", "Bo Chan"]
    );
    assert_eq!(
        names(&service.data(&me, "/ufc/fighters?q=storm").await),
        ["Dana Okafor"]
    );
    assert_eq!(
        names(&service.data(&me, "/ufc/fighters?q=an").await),
        ["Ana Lima", "Bo Chan", "Dana Okafor", "Eli Santos"]
    );
    assert_eq!(
        names(&service.data(&me, "/ufc/fighters?min_wins=14").await),
        ["Ana Lima", "Eli Santos", "Femi Adeyemi"]
    );
    assert_eq!(
        names(
            &service
                .data(&me, "/ufc/fighters?stance=southpaw&country=nigeria")
                .await
        ),
        ["Femi Adeyemi"]
    );
    assert_eq!(
        names(&service.data(&me, "/ufc/fighters?q=%25").await),
        Vec::<&str>::new(),
        "% is literal"
    );
    let (all, sizes) = service.all_pages(&me, "/ufc/fighters", 4).await;
    assert_eq!(sizes, [4, 2]);
    let ordered: Vec<&str> = all.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(
        ordered,
        [
            "Ana Lima",
            "Bo Chan",
            "Carla Nyberg",
            "Dana Okafor",
            "Eli Santos",
            "Femi Adeyemi"
        ]
    );

    let bo = all.iter().find(|f| f["name"] == "Bo Chan").unwrap();
    let detail = service
        .data(
            &me,
            &format!("/ufc/fighters/{}", bo["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(
        (detail["wins"].clone(), detail["stance"].clone()),
        (json!(11), json!("Southpaw"))
    );
    let bouts: Vec<(&str, &str, &str)> = detail["fights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["event_name"].as_str().unwrap(),
                b["opponent_name"].as_str().unwrap(),
                b["result"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        bouts,
        [
            ("Fight Night Toronto", "Femi Adeyemi", "loss"),
            ("Fight Night Lisbon", "Ana Lima", "loss")
        ]
    );
    let carla = all.iter().find(|f| f["name"] == "Carla Nyberg").unwrap();
    let detail = service
        .data(
            &me,
            &format!("/ufc/fighters/{}", carla["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(detail["fights"][0]["result"], "draw");

    let events = service.data(&me, "/ufc/events").await;
    let events = events["items"].as_array().unwrap();
    let listed: Vec<(&str, i64)> = events
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["fights"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        listed,
        [("Fight Night Toronto", 2), ("Fight Night Lisbon", 2)],
        "newest first"
    );
    assert_eq!(
        service.data(&me, "/ufc/events?to=2024-12-31").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (_, sizes) = service.all_pages(&me, "/ufc/events", 1).await;
    assert_eq!(sizes, [1, 1]);
    let lisbon = service
        .data(
            &me,
            &format!("/ufc/events/{}", events[1]["id"].as_str().unwrap()),
        )
        .await;
    let card: Vec<(&str, &str, bool)> = lisbon["card"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["fighter_a"].as_str().unwrap(),
                b["method"].as_str().unwrap(),
                b["title_fight"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        card,
        [
            ("Eli Santos", "Decision", true),
            ("Ana Lima", "KO/TKO", false)
        ]
    );
    assert_eq!(lisbon["card"][0]["winner_id"], all[4]["id"]);
    service.stop().await;
}

#[tokio::test]
async fn users_follow_fighters_of_their_own_tenant() {
    let (service, admin) = with_catalogue().await;
    let (me, colleague) = (admin.colleague(), admin.colleague());
    let fighters = service.data(&me, "/ufc/fighters").await;
    let id = |name: &str| {
        fighters["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (ana, eli) = (id("Ana Lima"), id("Eli Santos"));
    let (status, body) = service
        .put(&me, &format!("/ufc/fighters/{ana}/follow"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["fighter"]["followed"], true);
    let first = body["data"]["followed_at"].clone();
    let (_, again) = service
        .put(&me, &format!("/ufc/fighters/{ana}/follow"))
        .await;
    assert_eq!(
        again["data"]["followed_at"], first,
        "following twice changes nothing"
    );
    service
        .put(&me, &format!("/ufc/fighters/{eli}/follow"))
        .await;

    let (subs, sizes) = service.all_pages(&me, "/ufc/subscriptions", 1).await;
    assert_eq!(sizes, [1, 1]);
    let followed: Vec<&str> = subs
        .iter()
        .map(|s| s["fighter"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(followed, ["Eli Santos", "Ana Lima"], "most recent first");
    assert_eq!(
        names(&service.data(&me, "/ufc/fighters?followed=true").await),
        ["Ana Lima", "Eli Santos"]
    );

    // A colleague follows nobody and sees the catalogue unfollowed.
    assert_eq!(
        service.data(&colleague, "/ufc/subscriptions").await["items"],
        json!([])
    );
    let seen = service
        .data(&colleague, &format!("/ufc/fighters/{ana}"))
        .await;
    assert_eq!(seen["followed"], false);

    let (status, _) = service
        .delete(&me, &format!("/ufc/fighters/{ana}/follow"))
        .await;
    assert_eq!(status, 200);
    let (status, _) = service
        .delete(&me, &format!("/ufc/fighters/{ana}/follow"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        names(&service.data(&me, "/ufc/fighters?followed=true").await),
        ["Eli Santos"]
    );

    // Another tenant has no such fighter, event, or subscription.
    let stranger = Caller::new();
    let (status, _) = service
        .get(&stranger, &format!("/ufc/fighters/{eli}"))
        .await;
    assert_eq!(status, 404);
    let (status, _) = service
        .put(&stranger, &format!("/ufc/fighters/{eli}/follow"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        service.data(&stranger, "/ufc/fighters").await["items"],
        json!([])
    );
    assert_eq!(
        service.data(&stranger, "/ufc/events").await["items"],
        json!([])
    );
    service.stop().await;
}
