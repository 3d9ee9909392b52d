//! Not an example for users: the stand-in Skype client that `tests/process_supervision.rs`
//! has the supervisor run. It does what the supervisor watches a Skype client for: publish
//! `_SKYPE_INSTANCE` on its display and live as long as the X server does.
//! `SKYPOPEN_STANDIN_BROKEN=<display>` makes the client of that display exit at once.

use x11rb::connection::Connection as _;
use x11rb::protocol::xproto::{
    AtomEnum, ConnectionExt as _, CreateWindowAux, PropMode, WindowClass,
};
use x11rb::wrapper::ConnectionExt as _;

fn main() {
    let display = std::env::var("DISPLAY").expect("DISPLAY");
    if std::env::var("SKYPOPEN_STANDIN_BROKEN").ok().as_deref() == Some(display.as_str()) {
        std::process::exit(3);
    }
    // A client whose X server is gone exits, as the real one does.
    let Ok((conn, screen)) = x11rb::connect(Some(&display)) else {
        std::process::exit(1);
    };
    let root = conn.setup().roots[screen].root;
    let window = conn.generate_id().expect("id");
    conn.create_window(
        x11rb::COPY_DEPTH_FROM_PARENT,
        window,
        root,
        0,
        0,
        1,
        1,
        0,
        WindowClass::INPUT_OUTPUT,
        0,
        &CreateWindowAux::new(),
    )
    .expect("create window");
    let atom = conn
        .intern_atom(false, b"_SKYPE_INSTANCE")
        .expect("intern")
        .reply()
        .expect("atom")
        .atom;
    conn.change_property32(PropMode::REPLACE, root, atom, AtomEnum::WINDOW, &[window])
        .expect("set property");
    conn.flush().expect("flush");
    // Like the real client: live until the X server goes away.
    while conn.wait_for_event().is_ok() {}
    std::process::exit(1);
}
