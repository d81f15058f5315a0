//! Blood tests: the CSV import (all or nothing, bad rows by line), filters and pagination, panels,
//! trends and out-of-range flags, and isolation between users and tenants.

use serde_json::json;

use crate::support::{Caller, Service, close, f, fixture};

async fn with_panels() -> (Service, Caller) {
    let service = Service::start().await;
    let me = Caller::new();
    let (status, body) = service
        .post_body(&me, "/blood/imports", fixture("blood/panels.csv"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["panels"], 3);
    assert_eq!(body["data"]["panels_created"], 3);
    assert_eq!(body["data"]["markers"]["inserted"], 9);
    (service, me)
}

#[tokio::test]
async fn a_bad_row_rejects_the_whole_file_with_every_line_named() {
    let service = Service::start().await;
    let me = Caller::new();
    let (status, body) = service
        .post_body(&me, "/blood/imports", fixture("blood/bad.csv"))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["success"], false);
    let errors: Vec<(u64, &str)> = body["data"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["column"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errors,
        [(3, "date"), (4, "value"), (5, "marker"), (6, "unit")]
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("nothing was imported")
    );
    // Line 2 was fine, and still nothing was written.
    assert_eq!(
        service.data(&me, "/blood/markers").await["items"],
        json!([])
    );
    assert_eq!(service.data(&me, "/blood/panels").await["items"], json!([]));

    let (status, body) = service
        .post_body(
            &me,
            "/blood/imports",
            b"date,marker\n2024-01-01,x\n".to_vec(),
        )
        .await;
    assert_eq!(status, 422);
    let missing: Vec<&str> = body["data"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["column"].as_str().unwrap())
        .collect();
    assert_eq!(missing, ["value", "unit"]);
    service.stop().await;
}

/// `(line, column, message)` of every error of a rejected import.
fn rejected(body: &serde_json::Value) -> Vec<(u64, String, String)> {
    body["data"]["errors"]
        .as_array()
        .unwrap()
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
async fn nul_control_characters_and_oversized_cells_reject_the_file_by_line_and_column() {
    let service = Service::start().await;
    let me = Caller::new();
    let mut csv = b"date,lab,marker,value,unit,ref_low,ref_high,note\n\
        2024-01-15,Synlab,Glucose,5.1,mmol/L,3.9,5.6,tab\tis fine\n\
        2024-01-15,Synlab,LDL\0cholesterol,3.9,mmol/L,,3.0,\n"
        .to_vec();
    // A 1 MB marker name (line 4) failed PostgreSQL's index, a NUL (line 3) its text type.
    csv.extend(format!("2024-01-15,Synlab,{},1,mmol/L,,,\n", "M".repeat(1 << 20)).bytes());
    csv.extend(b"2024-01-15,Synlab,Iron,12,umol/L,,,see\x07note\n");
    csv.extend(format!("2024-01-15,Synlab,Ferritin,40,{},,,\n", "u".repeat(41)).bytes());
    csv.extend(b"2024-01-15,Synlab,Vitamin D,60,nmol/L,-inf,250,\n");
    csv.extend(format!("2024-01-15,Synlab,B12,300,pmol/L,,,{}\n", "n".repeat(1001)).bytes());
    let (status, body) = service.post_body(&me, "/blood/imports", csv).await;
    assert_eq!(
        status,
        422,
        "{}",
        &body.to_string()[..body.to_string().len().min(2000)]
    );
    assert_eq!(body["success"], false);
    let control = "must not contain control characters (only tab is allowed)";
    assert_eq!(
        rejected(&body),
        [
            (
                3,
                "marker".into(),
                "marker must not contain a NUL character".into()
            ),
            (
                4,
                "marker".into(),
                "marker is longer than 200 characters".into()
            ),
            (5, "note".into(), format!("note {control}")),
            (6, "unit".into(), "unit is longer than 40 characters".into()),
            (
                7,
                "ref_low".into(),
                "ref_low must be a finite number".into()
            ),
            (
                8,
                "note".into(),
                "note is longer than 1000 characters".into()
            ),
        ]
    );
    assert_eq!(
        service.data(&me, "/blood/markers").await["items"],
        json!([])
    );
    assert_eq!(service.data(&me, "/blood/panels").await["items"], json!([]));
    service.stop().await;
}

#[tokio::test]
async fn imported_markers_filter_paginate_and_reimport_unchanged() {
    let (service, me) = with_panels().await;
    let count = |path: &'static str| {
        let (service, me) = (&service, &me);
        async move {
            service.data(me, path).await["items"]
                .as_array()
                .unwrap()
                .len()
        }
    };
    assert_eq!(count("/blood/markers?marker=ldl%20CHOLESTEROL").await, 3);
    assert_eq!(count("/blood/markers?category=Lipids").await, 4);
    assert_eq!(count("/blood/markers?out_of_range=true").await, 4);
    assert_eq!(count("/blood/markers?flag=low").await, 1);
    assert_eq!(count("/blood/markers?from=2024-06-01").await, 4);
    assert_eq!(
        count("/blood/markers?from=2024-01-15&to=2024-01-15&category=lipids").await,
        2
    );
    let (status, _) = service.get(&me, "/blood/markers?flag=weird").await;
    assert_eq!(status, 400);

    let (all, sizes) = service.all_pages(&me, "/blood/markers", 2).await;
    assert_eq!(sizes, [2, 2, 2, 2, 1]);
    let dates: Vec<&str> = all
        .iter()
        .map(|m| m["taken_on"].as_str().unwrap())
        .collect();
    assert!(
        dates.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {dates:?}"
    );
    let vit_d = all
        .iter()
        .find(|m| m["name"] == "Vitamin D" && m["taken_on"] == "2024-01-15")
        .unwrap();
    assert_eq!(
        (vit_d["flag"].clone(), vit_d["lab"].clone()),
        (json!("low"), json!("Synlab"))
    );
    let hdl = all.iter().find(|m| m["name"] == "HDL cholesterol").unwrap();
    assert_eq!(
        (hdl["ref_high"].clone(), hdl["flag"].clone()),
        (json!(null), json!("normal"))
    );

    let panels = service.data(&me, "/blood/panels").await;
    let panels = panels["items"].as_array().unwrap();
    let summary: Vec<(&str, i64, i64)> = panels
        .iter()
        .map(|p| {
            (
                p["taken_on"].as_str().unwrap(),
                p["markers"].as_i64().unwrap(),
                p["out_of_range"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("2024-01-15", 5, 2),
            ("2024-06-20", 3, 2),
            ("2024-11-02", 1, 0)
        ]
    );
    assert_eq!(panels[0]["name"], "Annual check-up");
    assert_eq!(
        service.data(&me, "/blood/panels?lab=MEDLAB").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (pages, sizes) = service.all_pages(&me, "/blood/panels", 2).await;
    assert_eq!((pages.len(), sizes), (3, vec![2, 1]));
    let detail = service
        .data(
            &me,
            &format!("/blood/panels/{}", panels[0]["id"].as_str().unwrap()),
        )
        .await;
    let names: Vec<&str> = detail["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Ferritin",
            "HDL cholesterol",
            "LDL cholesterol",
            "Glucose",
            "Vitamin D"
        ]
    );

    let names = service.data(&me, "/blood/markers/names").await;
    let ldl = names
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "LDL cholesterol")
        .unwrap();
    assert_eq!(
        (ldl["count"].clone(), ldl["last_date"].clone()),
        (json!(3), json!("2024-11-02"))
    );

    let (status, body) = service
        .post_body(&me, "/blood/imports", fixture("blood/panels.csv"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["panels_created"], 0);
    assert_eq!(
        body["data"]["markers"],
        json!({"inserted": 0, "updated": 0, "unchanged": 9, "skipped": 0})
    );
    let fixed =
        b"date,lab,marker,value,unit,ref_high\n2024-11-02,Medlab,LDL cholesterol,2.9,mmol/L,3.0\n";
    let (_, body) = service
        .post_body(&me, "/blood/imports", fixed.to_vec())
        .await;
    assert_eq!(body["data"]["markers"]["updated"], 1);
    service.stop().await;
}

#[tokio::test]
async fn a_trend_follows_one_marker() {
    let (service, me) = with_panels().await;
    let t = service
        .data(&me, "/blood/markers/trend?marker=ldl%20cholesterol")
        .await;
    assert_eq!(t["marker"], "LDL cholesterol");
    let points: Vec<(&str, f64, &str)> = t["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["date"].as_str().unwrap(),
                f(&p["value"]),
                p["flag"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        points,
        [
            ("2024-01-15", 3.9, "high"),
            ("2024-06-20", 3.1, "high"),
            ("2024-11-02", 2.8, "normal")
        ]
    );
    close(f(&t["latest"]), 2.8);
    close(f(&t["min"]), 2.8);
    close(f(&t["max"]), 3.9);
    close(f(&t["change"]), 2.8 - 3.9);
    assert_eq!(t["out_of_range"], 2);
    let first_half = service
        .data(
            &me,
            "/blood/markers/trend?marker=LDL%20cholesterol&to=2024-06-30",
        )
        .await;
    assert_eq!(first_half["points"].as_array().unwrap().len(), 2);
    let none = service
        .data(&me, "/blood/markers/trend?marker=Cortisol")
        .await;
    assert_eq!(
        (none["points"].clone(), none["latest"].clone()),
        (json!([]), json!(null))
    );
    let (status, _) = service.get(&me, "/blood/markers/trend").await;
    assert_eq!(status, 400);
    service.stop().await;
}

#[tokio::test]
async fn blood_tests_stay_with_their_user_and_tenant() {
    let (service, me) = with_panels().await;
    let panel = service.data(&me, "/blood/panels").await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for other in [me.colleague(), Caller::new()] {
        let (status, _) = service.get(&other, &format!("/blood/panels/{panel}")).await;
        assert_eq!(status, 404);
        assert_eq!(
            service.data(&other, "/blood/markers").await["items"],
            json!([])
        );
        assert_eq!(
            service.data(&other, "/blood/panels").await["items"],
            json!([])
        );
        assert_eq!(
            service.data(&other, "/blood/markers/names").await,
            json!([])
        );
        let t = service
            .data(&other, "/blood/markers/trend?marker=LDL%20cholesterol")
            .await;
        assert_eq!(t["points"], json!([]));
        // Their own import of the same file is theirs alone.
        let (status, body) = service
            .post_body(&other, "/blood/imports", fixture("blood/panels.csv"))
            .await;
        assert_eq!(
            (status.as_u16(), body["data"]["panels_created"].clone()),
            (200, json!(3))
        );
    }
    assert_eq!(
        service.data(&me, "/blood/panels").await["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    service.stop().await;
}
