// sqlx::migrate! embeds migrations/ at compile time: rebuild when a file there is added
// or changed (cargo does not see new files on its own).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
