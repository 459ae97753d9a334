//! Writes the seed corpus: `cargo run --bin gen-corpus` (from `fuzz/`) replaces every seed
//! file in `corpus/<target>/` with the one `usbfn_fuzz::seeds` builds from today's code.
//! Files it does not know (regression inputs added by hand) are left alone.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, seeds) in usbfn_fuzz::seeds::all() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(name), bytes)?;
        }
        println!("{target}: {} seeds in {}", seeds.len(), dir.display());
    }
    Ok(())
}
