// Migrations are embedded by `sqlx::migrate!`; a new or changed file must rebuild the binary.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
