//! Garmin datasets and analyses: filters and pagination of each fetcher, and the analyses against
//! values computed by hand from the fixtures (docs/health.md defines them).

use serde_json::{Value, json};

use crate::garmin::imported;
use crate::support::{close, f};

#[tokio::test]
async fn datasets_filter_and_paginate() {
    let (service, me) = imported().await;
    let (days, sizes) = service.all_pages(&me, "/garmin/daily-summaries", 4).await;
    assert_eq!(sizes, [4, 2]);
    let dates: Vec<&str> = days
        .iter()
        .map(|d| d["calendar_date"].as_str().unwrap())
        .collect();
    assert_eq!(
        dates,
        [
            "2024-03-07",
            "2024-03-08",
            "2024-03-09",
            "2024-03-10",
            "2024-03-11",
            "2024-03-12"
        ]
    );
    assert_eq!(
        (
            days[0]["steps"].clone(),
            days[0]["resting_hr"].clone(),
            days[0]["avg_stress"].clone()
        ),
        (json!(8000), json!(52), json!(30))
    );
    assert_eq!(
        (
            days[0]["body_battery_high"].clone(),
            days[0]["body_battery_low"].clone()
        ),
        (json!(85), json!(20))
    );

    let nights = service
        .data(&me, "/garmin/sleep?from=2024-03-09&to=2024-03-10")
        .await;
    let nights = nights["items"].as_array().unwrap();
    assert_eq!(nights.len(), 2);
    assert_eq!(
        (nights[0]["asleep_s"].clone(), nights[0]["score"].clone()),
        (json!(28800), json!(90))
    );
    assert_eq!(nights[0]["sleep_start"], "2024-03-08T22:30:00Z");
    assert_eq!(
        (nights[1]["asleep_s"].clone(), nights[1]["score"].clone()),
        (json!(27000), json!(84))
    );

    let hrv = service.data(&me, "/garmin/hrv?from=2024-03-11").await;
    let values: Vec<f64> = hrv["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| f(&h["last_night_avg"]))
        .collect();
    assert_eq!(values, [45.0, 52.0]);

    let body = service.data(&me, "/garmin/body-composition").await;
    let body = body["items"].as_array().unwrap();
    assert_eq!(body.len(), 2);
    assert_eq!(
        (f(&body[0]["weight_kg"]), f(&body[0]["muscle_mass_kg"])),
        (78.5, 36.1)
    );
    assert_eq!(body[1]["measured_at"], "2024-03-11T06:05:00Z");
    let (weigh_ins, sizes) = service.all_pages(&me, "/garmin/body-composition", 1).await;
    assert_eq!((weigh_ins.len(), sizes), (2, vec![1, 1]));

    let runs = service.data(&me, "/garmin/activities?type=running").await;
    let sources: Vec<&str> = runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["garmin_connect", "fit"]);
    let some = service
        .data(&me, "/garmin/activities?from=2024-03-09&to=2024-03-11")
        .await;
    let names: Vec<&str> = some["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Saturday Ride", "Strength"]);
    let (all, sizes) = service.all_pages(&me, "/garmin/activities", 1).await;
    assert_eq!(sizes, [1, 1, 1, 1]);
    let run = &all[0];
    assert_eq!(
        (run["external_id"].clone(), run["activity_date"].clone()),
        (json!("14100000001"), json!("2024-03-07"))
    );
    assert_eq!(
        (f(&run["duration_s"]), f(&run["distance_m"])),
        (1800.0, 5200.0)
    );
    close(f(&run["training_load"]), 71.0);
    close(f(&all[2]["training_load"]), 80.0); // strength: no zones, 2 x 40 minutes
    let one = service
        .data(
            &me,
            &format!("/garmin/activities/{}", all[1]["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(one["activity_type"], "road_biking");
    close(f(&one["training_load"]), 130.0);

    for bad in [
        "/garmin/daily-summaries?limit=0",
        "/garmin/daily-summaries?limit=501",
        "/garmin/daily-summaries?from=2024-03-12&to=2024-03-07",
        "/garmin/daily-summaries?from=yesterday",
        "/garmin/sleep?cursor=%21%21",
        "/garmin/activities/not-a-uuid",
        "/garmin/analysis/weekly?from=2024-03-07",
        "/garmin/analysis/weekly?from=2023-01-01&to=2024-03-07",
    ] {
        let (status, body) = service.get(&me, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    service.stop().await;
}

fn pearson(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let cov: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let vx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    let vy: f64 = ys.iter().map(|y| (y - my).powi(2)).sum();
    cov / (vx * vy).sqrt()
}

#[tokio::test]
async fn analyses_match_hand_computed_values() {
    let (service, me) = imported().await;
    // Loads (TRIMP): 07 run 71, 09 ride 130, 11 strength 2 x 40 = 80, 12 FIT run 71.
    let a = service
        .data(
            &me,
            "/garmin/analysis/sleep-vs-load?from=2024-03-07&to=2024-03-12",
        )
        .await;
    let expected = [
        ("2024-03-07", 80, 420.0, 71.0, 0.0),
        ("2024-03-08", 70, 390.0, 0.0, 71.0),
        ("2024-03-09", 90, 480.0, 130.0, 71.0),
        ("2024-03-10", 84, 450.0, 0.0, 201.0),
        ("2024-03-11", 60, 360.0, 80.0, 201.0),
        ("2024-03-12", 75, 400.0, 71.0, 281.0),
    ];
    let days = a["days"].as_array().unwrap();
    assert_eq!(days.len(), expected.len());
    for (day, (date, score, minutes, load, prev)) in days.iter().zip(expected) {
        assert_eq!(
            (
                day["date"].as_str().unwrap(),
                day["sleep_score"].as_i64().unwrap()
            ),
            (date, score)
        );
        close(f(&day["sleep_minutes"]), minutes);
        close(f(&day["load"]), load);
        close(f(&day["load_prev_7d"]), prev);
    }
    close(f(&a["avg_sleep_score"]), 459.0 / 6.0);
    close(f(&a["avg_load"]), 352.0 / 6.0);
    let scores = [80.0, 70.0, 90.0, 84.0, 60.0, 75.0];
    let prev = [0.0, 71.0, 71.0, 201.0, 201.0, 281.0];
    close(f(&a["correlation"]), pearson(&scores, &prev));

    // A day without a night: the score is null, the load still counts.
    let later = service
        .data(
            &me,
            "/garmin/analysis/sleep-vs-load?from=2024-03-13&to=2024-03-15",
        )
        .await;
    assert_eq!(later["days"][0]["sleep_score"], Value::Null);
    close(f(&later["days"][0]["load_prev_7d"]), 352.0);
    close(f(&later["days"][1]["load_prev_7d"]), 352.0);
    close(f(&later["days"][2]["load_prev_7d"]), 281.0);
    assert_eq!(later["correlation"], Value::Null);

    let weeks = service
        .data(&me, "/garmin/analysis/weekly?from=2024-03-07&to=2024-03-12")
        .await;
    let weeks = weeks.as_array().unwrap();
    assert_eq!(weeks.len(), 2);
    let (w1, w2) = (&weeks[0], &weeks[1]);
    assert_eq!(
        (w1["week_start"].clone(), w1["days"].clone()),
        (json!("2024-03-04"), json!(4))
    );
    close(f(&w1["avg_steps"]), 9000.0);
    assert_eq!(w1["steps_change"], Value::Null);
    close(f(&w1["avg_resting_hr"]), 52.0);
    close(f(&w1["avg_stress"]), 30.0);
    close(f(&w1["avg_sleep_minutes"]), 435.0);
    close(f(&w1["avg_sleep_score"]), 81.0);
    close(f(&w1["avg_hrv"]), 55.75);
    assert_eq!(w1["activities"], 2);
    close(f(&w1["activity_minutes"]), 90.0);
    close(f(&w1["training_load"]), 201.0);
    assert_eq!(
        (w2["week_start"].clone(), w2["days"].clone()),
        (json!("2024-03-11"), json!(2))
    );
    close(f(&w2["avg_steps"]), 8000.0);
    close(f(&w2["steps_change"]), -1000.0);
    close(f(&w2["avg_resting_hr"]), 54.0);
    close(f(&w2["avg_stress"]), 40.0);
    close(f(&w2["avg_sleep_minutes"]), 380.0);
    close(f(&w2["avg_sleep_score"]), 67.5);
    close(f(&w2["avg_hrv"]), 48.5);
    assert_eq!(w2["activities"], 2);
    close(f(&w2["activity_minutes"]), 70.0);
    close(f(&w2["training_load"]), 151.0);
    service.stop().await;
}
