//! One teardown: what `nslab plan --teardown` prints is what `down` builds from the
//! journal of a lab brought up from the same file.

mod support;

use support::*;

#[test]
fn the_journal_of_a_running_lab_gives_the_teardown_plan_prints() {
    if !privileged() {
        return;
    }
    let _host = shared();
    for (name, example) in [("td-services", "services.yaml"), ("td-star4", "star4.yaml")] {
        let lab = Lab::from_example(name, example);
        lab.up();
        let compiled = nslab::compile_file(&lab.file).expect("the example compiles");
        let planned = nslab::plan::plan(&compiled.topology).teardown();
        let journal = format!("/run/nslab/{name}.journal");
        let recorded = nslab::state::teardown_objects(std::path::Path::new(&journal)).unwrap();
        let from_journal = nslab::plan::Teardown::of(recorded);
        assert_eq!(from_journal, planned, "{example}");
        assert!(!planned.nodes.is_empty() || example == "star4.yaml");
        lab.down();
    }
}
