mod support;

#[test]
fn xvfb_starts_and_stops() {
    let x = support::xvfb::Xvfb::start();
    assert!(x11rb::connect(Some(&x.display)).is_ok());
}
