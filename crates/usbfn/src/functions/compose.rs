//! One device from the functions that serve it: a function alone keeps its own device
//! descriptor; several become a composite device (class EF/02/01, with each multi-interface
//! function's interface association), as the kernel's composite framework builds them.

use usbfn_core::config::{
    AssociationSection, DeviceConfig, DeviceSection, DirectionName, InterfaceSection,
};

/// What one function instance contributes to a device.
#[derive(Clone, Debug, PartialEq)]
pub struct Fragment {
    /// The device descriptor used when the function is the device's only one.
    pub device: DeviceSection,
    /// Its interfaces, with names unique per instance (e.g. `acm0.control`).
    pub interfaces: Vec<InterfaceSection>,
    /// Its interface associations (one IAD for a multi-interface function).
    pub associations: Vec<AssociationSection>,
}

/// The Linux Foundation's "Multifunction Composite Gadget" ID, as the kernel's `g_multi`.
pub const COMPOSITE_VENDOR_ID: u16 = 0x1d6b;
/// See [`COMPOSITE_VENDOR_ID`].
pub const COMPOSITE_PRODUCT_ID: u16 = 0x0104;

/// The device `fragments` make. One fragment: exactly its own descriptors. Several: a
/// composite device whose interface numbers and endpoint addresses are assigned in order
/// (fixed ones are dropped, since two functions may each ask for the same), that draws the
/// most power any function asks for and runs at the highest speed every function supports;
/// device requests go to the first function that wants them.
pub fn compose(fragments: Vec<Fragment>) -> DeviceConfig {
    let single = fragments.len() == 1;
    let mut device: Option<DeviceSection> = None;
    let mut interfaces = Vec::new();
    let mut associations = Vec::new();
    let mut owner_taken = false;
    for fragment in fragments {
        device = Some(match device {
            None => fragment.device.clone(),
            Some(mut d) => {
                d.max_power_ma = d.max_power_ma.max(fragment.device.max_power_ma);
                d.max_speed = d.max_speed.min(fragment.device.max_speed);
                d.self_powered &= fragment.device.self_powered;
                d
            }
        });
        for mut iface in fragment.interfaces {
            if !single {
                iface.number = None;
                for ep in iface.endpoints.iter_mut().chain(
                    iface
                        .alternates
                        .iter_mut()
                        .flat_map(|a| a.endpoints.iter_mut()),
                ) {
                    if let Some(address) = ep.address.take() {
                        ep.direction = Some(if address & 0x80 != 0 {
                            DirectionName::In
                        } else {
                            DirectionName::Out
                        });
                    }
                }
                if iface.device_request_owner {
                    iface.device_request_owner = !owner_taken;
                    owner_taken = true;
                }
            }
            interfaces.push(iface);
        }
        associations.extend(fragment.associations);
    }
    let mut device = device.unwrap_or_else(default_device);
    if !single {
        let first = device;
        device = DeviceSection {
            max_power_ma: first.max_power_ma,
            max_speed: first.max_speed,
            self_powered: first.self_powered,
            serial: first.serial,
            ..default_device()
        };
    }
    DeviceConfig {
        device,
        configurations: Vec::new(),
        interfaces,
        associations,
        control: Default::default(),
    }
}

/// The composite device's descriptor: 1d6b:0104, class EF/02/01 (interface associations).
pub fn default_device() -> DeviceSection {
    DeviceSection {
        vendor_id: COMPOSITE_VENDOR_ID,
        product_id: COMPOSITE_PRODUCT_ID,
        bcd_device: 0x0100,
        class: 0xef,
        subclass: 0x02,
        protocol: 0x01,
        manufacturer: Some("usbfn".into()),
        product: Some("usbfn composite device".into()),
        serial: Some("0123456789".into()),
        self_powered: true,
        max_power_ma: 100,
        remote_wakeup: false,
        bcd_usb: None,
        max_packet_size0: 64,
        max_speed: usbfn_core::BusSpeed::Super,
        lpm: false,
        ms_os_vendor_code: None,
        language_id: 0x0409,
    }
}
