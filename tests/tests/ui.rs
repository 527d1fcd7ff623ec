//! Compile tests of `#[cni_plugin]`: `ui/pass` must build, `ui/fail` must fail with exactly
//! the diagnostics in the `.stderr` file next to each case.
//!
//! Most snapshots hold only the macro's own messages, which do not change with the compiler.
//! A few (`init_wrong_type`, `init_needs_arguments`, `not_default`) show rustc's type errors,
//! which can change between releases; they were recorded with rustc 1.95.0. Refresh with
//! `TRYBUILD=overwrite cargo test -p cni-tests --test ui` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
