//! Garmin imports: the export and FIT files (idempotent), the import job's report, the same
//! workout from two sources, and the data staying with its user and tenant.

use serde_json::json;

use crate::support::{Caller, Service, export_zip, f, fit, fit_file, fixture_path};

/// A service with the fixture export and FIT file imported for a new user.
pub async fn imported() -> (Service, Caller) {
    let service = Service::start().await;
    let me = Caller::new();
    let job = service.import(&me, vec![export_zip(), fit_file()]).await;
    assert_eq!(job["status"], "completed", "{job}");
    (service, me)
}

#[test]
fn fit_fixture_is_the_encoders_output_and_parses() {
    let encoded = fit::activity();
    let path = fixture_path("garmin/activity_2024-03-12.fit");
    if std::env::var_os("HDS_WRITE_FIXTURES").is_some() {
        std::fs::write(&path, &encoded).unwrap();
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        encoded,
        "regenerate with HDS_WRITE_FIXTURES=1"
    );
    let activities = health_data_service::garmin::fit::parse(&encoded).unwrap();
    assert_eq!(activities.len(), 1);
    let a = &activities[0];
    assert_eq!(a.started_at.to_rfc3339(), "2024-03-12T06:30:00+00:00");
    assert_eq!(a.activity_date.to_string(), "2024-03-12");
    assert_eq!(
        (a.activity_type.as_str(), a.name.as_deref()),
        ("running", Some("Running"))
    );
    assert_eq!(
        (a.duration_s, a.distance_m, a.calories),
        (1800.0, Some(5000.0), Some(410))
    );
    assert_eq!((a.avg_hr, a.max_hr), (Some(150), Some(172)));
    assert_eq!(a.hr_zones_s, Some(vec![300.0, 600.0, 600.0, 240.0, 0.0]));
    assert_eq!(a.external_id, format!("3900000001-{}", 1_710_225_000));
}

#[tokio::test]
async fn export_and_fit_import_and_a_reimport_changes_nothing() {
    let service = Service::start().await;
    let me = Caller::new();
    let job = service.import(&me, vec![export_zip(), fit_file()]).await;
    assert_eq!(job["status"], "completed", "{job}");
    // Five JSON files and the FIT file; personalRecord.json is not read.
    assert_eq!(
        (job["files_total"].clone(), job["files_done"].clone()),
        (json!(6), json!(6))
    );
    assert_eq!(job["files_skipped"], 1);
    assert_eq!(job["errors"], json!([]));
    let r = &job["records"];
    let counts = |d: &str| {
        (
            r[d]["inserted"].clone(),
            r[d]["unchanged"].clone(),
            r[d]["skipped"].clone(),
        )
    };
    assert_eq!(counts("daily_summaries"), (json!(6), json!(0), json!(0)));
    assert_eq!(
        counts("sleep"),
        (json!(6), json!(0), json!(1)),
        "a night without data is skipped"
    );
    assert_eq!(counts("hrv"), (json!(6), json!(0), json!(0)));
    assert_eq!(
        counts("body_composition"),
        (json!(2), json!(0), json!(1)),
        "height-only entry"
    );
    assert_eq!(counts("activities"), (json!(4), json!(0), json!(0)));

    let status = service.data(&me, "/garmin/status").await;
    let expect = |d: &str, n: i64, first: &str, last: &str| {
        assert_eq!(
            status[d],
            json!({"count": n, "first_date": first, "last_date": last}),
            "{d}"
        );
    };
    expect("daily_summaries", 6, "2024-03-07", "2024-03-12");
    expect("sleep", 6, "2024-03-07", "2024-03-12");
    expect("activities", 4, "2024-03-07", "2024-03-12");
    expect("hrv", 6, "2024-03-07", "2024-03-12");
    expect("body_composition", 2, "2024-03-07", "2024-03-11");

    let again = service.import(&me, vec![export_zip(), fit_file()]).await;
    assert_eq!(again["status"], "completed");
    for (dataset, counts) in again["records"].as_object().unwrap() {
        assert_eq!(counts["inserted"], 0, "{dataset}: {counts}");
        assert_eq!(counts["updated"], 0, "{dataset}: {counts}");
    }
    assert_eq!(again["records"]["daily_summaries"]["unchanged"], 6);
    assert_eq!(service.data(&me, "/garmin/status").await, status);
    let jobs = service.data(&me, "/garmin/imports").await;
    assert_eq!(jobs.as_array().unwrap().len(), 2);
    assert_eq!(jobs[0]["id"], again["id"], "newest first");
    service.stop().await;
}

#[tokio::test]
async fn a_fit_file_and_the_same_workout_from_the_export_are_one_activity() {
    let service = Service::start().await;
    let me = Caller::new();
    let job = service.import(&me, vec![fit_file()]).await;
    assert_eq!(job["records"]["activities"]["inserted"], 1, "{job}");
    let list = service.data(&me, "/garmin/activities").await;
    let a = &list["items"][0];
    assert_eq!(
        (a["source"].clone(), a["name"].clone()),
        (json!("fit"), json!("Running"))
    );
    assert_eq!(
        (a["started_at"].clone(), a["activity_date"].clone()),
        (json!("2024-03-12T06:30:00Z"), json!("2024-03-12"))
    );
    assert_eq!(a["hr_zones_s"], json!([300.0, 600.0, 600.0, 240.0, 0.0]));
    assert_eq!(
        (
            a["avg_hr"].clone(),
            a["max_hr"].clone(),
            a["calories"].clone()
        ),
        (json!(150), json!(172), json!(410))
    );

    // The export lists the same workout (same start): it only fills in what the FIT row lacks
    // (nothing here) and adds no second row.
    let export = json!([{"summarizedActivitiesExport": [{
        "activityId": 14100000004_i64, "name": "Tuesday Run", "activityType": "running",
        "startTimeGmt": 1_710_225_000_000_i64, "startTimeLocal": 1_710_228_600_000_i64,
        "duration": 1_800_000.0, "distance": 500_000.0, "avgHr": 150.0}]}]);
    let job = service
        .import(
            &me,
            vec![(
                "x_summarizedActivities.json".into(),
                export.to_string().into_bytes(),
            )],
        )
        .await;
    assert_eq!(job["records"]["activities"]["inserted"], 0, "{job}");
    let list = service.data(&me, "/garmin/activities").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        list["items"][0]["name"], "Running",
        "the FIT row keeps its values"
    );
    service.stop().await;
}

#[tokio::test]
async fn import_jobs_report_bad_files_and_refuse_empty_uploads() {
    let service = Service::start().await;
    let me = Caller::new();
    let (name, uds) = (
        "UDSFile_2024-03-07_2024-03-12.json",
        crate::support::fixture(
            "garmin/DI_CONNECT/DI-Connect-Aggregator/UDSFile_2024-03-07_2024-03-12.json",
        ),
    );
    let job = service
        .import(
            &me,
            vec![
                (
                    "broken_sleepData.json".into(),
                    b"[{\"calendarDate\": ".to_vec(),
                ),
                (name.into(), uds),
                ("broken.fit".into(), b"not a fit file at all".to_vec()),
            ],
        )
        .await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(
        (job["files_total"].clone(), job["files_done"].clone()),
        (json!(3), json!(3))
    );
    let errors = job["errors"].as_array().unwrap();
    let files: Vec<&str> = errors.iter().map(|e| e["file"].as_str().unwrap()).collect();
    assert_eq!(files, ["broken_sleepData.json", "broken.fit"]);
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("not valid JSON"),
        "{errors:?}"
    );
    assert_eq!(job["records"]["daily_summaries"]["inserted"], 6);

    let only_bad = service
        .import(&me, vec![("x_sleepData.json".into(), b"42".to_vec())])
        .await;
    assert_eq!(
        only_bad["status"], "failed",
        "no file could be imported: {only_bad}"
    );

    let (status, body) = service
        .upload(&me, vec![("notes.txt".into(), b"hi".to_vec())])
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = service
        .upload(&me, vec![("export.zip".into(), b"PK no zip".to_vec())])
        .await;
    assert_eq!(status, 400, "{body}");
    let r = service
        .http
        .post(format!("{}/api/v1/health/garmin/imports", service.base))
        .bearer_auth(&me.token)
        .body("not multipart")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    service.stop().await;
}

#[tokio::test]
async fn nul_in_garmin_text_is_stripped_and_an_oversized_id_skips_its_entry() {
    let service = Service::start().await;
    let me = Caller::new();
    // Garmin's own files: text is kept without its control characters (PostgreSQL refuses
    // NUL); an activity id too long to be one is an entry that cannot be keyed, so it is skipped.
    let activities = json!([{"summarizedActivitiesExport": [
        {"activityId": 1, "name": "Morning\u{0}Run", "activityType": "run\u{0}ning",
         "startTimeGmt": 1_709_789_400_000_i64, "duration": 1_800_000.0},
        {"activityId": "9".repeat(10_000), "name": "An id of 10,000 digits",
         "startTimeGmt": 1_709_875_800_000_i64, "duration": 600_000.0},
        {"activityId": "7\u{0}7", "name": "An id with a NUL",
         "startTimeGmt": 1_709_962_200_000_i64, "duration": 600_000.0}
    ]}]);
    let hrv = json!([{"calendarDate": "2024-03-07",
        "metrics": [{"type": "HRV", "value": 50.0, "status": "BAL\u{0}ANCED"}]}]);
    // A file name with a NUL (inside a zip) is named in the job's errors without it.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file(
        "DI_CONNECT/bad\0_sleepData.json",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    std::io::Write::write_all(&mut zip, b"{not json").unwrap();
    let zip = zip.finish().unwrap().into_inner();
    let job = service
        .import(
            &me,
            vec![
                (
                    "a_summarizedActivities.json".into(),
                    activities.to_string().into_bytes(),
                ),
                (
                    "b_healthStatusData.json".into(),
                    hrv.to_string().into_bytes(),
                ),
                ("export.zip".into(), zip),
            ],
        )
        .await;
    assert_eq!(job["status"], "completed", "{job}");
    let errors = job["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{job}");
    assert_eq!(errors[0]["file"], "DI_CONNECT/bad_sleepData.json");
    assert_eq!(
        (
            job["records"]["activities"]["inserted"].clone(),
            job["records"]["activities"]["skipped"].clone()
        ),
        (json!(1), json!(2)),
        "{job}"
    );
    assert_eq!(job["records"]["hrv"]["inserted"], 1, "{job}");
    let a = &service.data(&me, "/garmin/activities").await["items"][0];
    assert_eq!(
        (a["name"].clone(), a["activity_type"].clone()),
        (json!("MorningRun"), json!("running"))
    );
    let h = &service.data(&me, "/garmin/hrv").await["items"][0];
    assert_eq!(h["status"], "BALANCED");
    service.stop().await;
}

#[tokio::test]
async fn another_user_or_tenant_sees_none_of_it() {
    let (service, me) = imported().await;
    let activity = service.data(&me, "/garmin/activities?limit=1").await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = service.data(&me, "/garmin/imports").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for other in [
        me.colleague(),
        Caller::new(),
        Caller::of(uuid::Uuid::now_v7(), common::auth::Role::Admin),
    ] {
        let (status, _) = service
            .get(&other, &format!("/garmin/activities/{activity}"))
            .await;
        assert_eq!(status, 404);
        let (status, _) = service.get(&other, &format!("/garmin/imports/{job}")).await;
        assert_eq!(status, 404);
        let s = service.data(&other, "/garmin/status").await;
        assert_eq!(s["daily_summaries"]["count"], 0);
        assert_eq!(s["activities"]["count"], 0);
        for list in [
            "/garmin/daily-summaries",
            "/garmin/sleep",
            "/garmin/activities",
            "/garmin/hrv",
            "/garmin/body-composition",
        ] {
            assert_eq!(
                service.data(&other, list).await["items"],
                json!([]),
                "{list}"
            );
        }
        assert_eq!(service.data(&other, "/garmin/imports").await, json!([]));
        let a = service
            .data(
                &other,
                "/garmin/analysis/sleep-vs-load?from=2024-03-07&to=2024-03-12",
            )
            .await;
        assert!(
            a["days"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["sleep_score"].is_null() && f(&d["load"]) == 0.0)
        );
        let w = service
            .data(
                &other,
                "/garmin/analysis/weekly?from=2024-03-07&to=2024-03-12",
            )
            .await;
        assert!(
            w.as_array()
                .unwrap()
                .iter()
                .all(|w| w["days"] == 0 && w["activities"] == 0)
        );
    }
    service.stop().await;
}
