//! `shiftscope merge` and `shiftscope import-deephys`: stores made from other stores or files.

use crate::cli::{ImportDeephysArgs, MergeArgs};

pub(crate) fn merge(args: &MergeArgs) -> anyhow::Result<()> {
    shiftscope_store::merge(&args.shards, &args.out)?;
    println!(
        "merged {} shards into {}",
        args.shards.len(),
        args.out.display()
    );
    Ok(())
}

pub(crate) fn import_deephys(args: &ImportDeephysArgs) -> anyhow::Result<()> {
    shiftscope_runtime::import_deephys(&args.model, &args.tests, &args.out, args.thumb)?;
    println!(
        "imported {} test files into {}",
        args.tests.len(),
        args.out.display()
    );
    Ok(())
}
