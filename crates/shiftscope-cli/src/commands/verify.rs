//! `shiftscope verify <store>`: are the store's files what its manifest says?

use shiftscope_store::Store;

use crate::cli::VerifyArgs;

pub(crate) fn run(args: &VerifyArgs) -> anyhow::Result<()> {
    // Opening checks every header and size against the manifest.
    let store = Store::open(&args.store)?;
    let report = store.verify()?;
    for (path, want, got) in &report.bad {
        println!("MISMATCH {}: manifest {want}, file {got}", path.display());
    }
    for name in &report.incomplete {
        println!("incomplete {name}: not checksummed until it is recorded fully");
    }
    println!(
        "{}: {} files verified, {} mismatched, {} datasets incomplete",
        args.store.display(),
        report.ok.len(),
        report.bad.len(),
        report.incomplete.len()
    );
    if report.bad.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{} files differ from their checksums", report.bad.len())
    }
}
