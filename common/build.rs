//! Rebuilds `common` when a migration is added: `sqlx::migrate!` embeds the files of
//! `migrations/`, but cargo only notices changes to files it was told about.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
