//! A controller needs a tokio runtime for its timer task: outside one `Controller::new` is an
//! error, not a panic, and `Controller::new_in` takes the runtime's handle.

use usbfn::functions::gadget_zero;
use usbfn::{Controller, Error};

#[test]
fn outside_a_runtime_new_is_an_error_and_new_in_takes_a_handle() {
    let config = gadget_zero::config();
    let err = Controller::new(&config).expect_err("no runtime here");
    assert!(matches!(err, Error::NoRuntime(_)), "{err}");
    assert!(err.to_string().contains("tokio runtime"), "{err}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let controller = Controller::new_in(&config, rt.handle()).expect("with a handle");
    let iface = controller
        .open(gadget_zero::INTERFACE_NAME)
        .expect("the interface opens");
    drop(iface);
}
