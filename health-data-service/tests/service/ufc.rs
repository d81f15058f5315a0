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
