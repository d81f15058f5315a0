//! Live audio on a real Redis: frames read in order, the end, the backlog bound, the idle end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use common::Bus;
use common::live_audio::{self, MAX_BACKLOG, Piece, WriteError};
use common::testing::isolated_settings;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

async fn bus() -> Bus {
    Bus::connect(&isolated_settings()).await.unwrap()
}

async fn drain(mut rx: tokio::sync::mpsc::Receiver<Piece>) -> Vec<Piece> {
    let mut got = Vec::new();
    while let Some(p) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the reader hung")
    {
        got.push(p);
    }
    got
}

#[tokio::test]
async fn frames_arrive_in_order_then_the_end_and_are_trimmed() {
    let bus = bus().await;
    let key = bus
        .names()
        .audio_input_stream(Uuid::now_v7(), Uuid::now_v7());
    let mut conn = bus.conn();
    let rx = live_audio::follow(
        bus.clone(),
        key.clone(),
        Duration::from_secs(5),
        CancellationToken::new(),
    );
    for i in 0..50u8 {
        live_audio::write(&mut conn, &key, &[i, 0, i, 0])
            .await
            .unwrap();
    }
    let mut rx = rx;
    let mut got = Vec::new();
    while got.len() < 50 {
        got.push(rx.recv().await.unwrap());
    }
    for (i, piece) in got.iter().enumerate() {
        assert_eq!(piece, &Piece::Audio(vec![i as u8, 0, i as u8, 0].into()));
    }
    // What was read is trimmed (the last entry read stays as the trim's mark).
    let mut left = usize::MAX;
    for _ in 0..50 {
        left = redis::cmd("XLEN")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        if left <= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(left <= 1, "read frames stay in Redis: {left}");
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= live_audio::TTL_SECS, "ttl {ttl}");
    live_audio::end(&mut conn, &key, "ended").await.unwrap();
    assert_eq!(drain(rx).await, vec![Piece::End("ended".into())]);
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!exists, "the stream outlived its end");
}

#[tokio::test]
async fn frames_nobody_reads_are_refused_not_trimmed() {
    let bus = bus().await;
    let key = bus
        .names()
        .audio_input_stream(Uuid::now_v7(), Uuid::now_v7());
    let mut conn = bus.conn();
    for _ in 0..MAX_BACKLOG {
        live_audio::write(&mut conn, &key, b"ab").await.unwrap();
    }
    let refused = live_audio::write(&mut conn, &key, b"ab").await;
    assert!(matches!(refused, Err(WriteError::Backlog)), "{refused:?}");
}

#[tokio::test]
async fn silence_on_the_stream_ends_it_as_idle_and_cancel_stops_the_reader() {
    let bus = bus().await;
    let key = bus
        .names()
        .audio_input_stream(Uuid::now_v7(), Uuid::now_v7());
    let rx = live_audio::follow(
        bus.clone(),
        key.clone(),
        Duration::from_millis(600),
        CancellationToken::new(),
    );
    assert_eq!(drain(rx).await, vec![Piece::End("idle".into())]);

    let cancel = CancellationToken::new();
    let rx = live_audio::follow(bus.clone(), key, Duration::from_secs(60), cancel.clone());
    cancel.cancel();
    assert!(drain(rx).await.is_empty());
}
