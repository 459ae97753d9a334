//! One device from the functions that serve it: a function alone keeps its own device
//! descriptor; several become a composite device (class EF/02/01, with each multi-interface
//! function's interface association), as the kernel's composite framework builds them.

use usbfn_core::config::{
    AssociationSection, DeviceConfig, DeviceSection, DirectionName, InterfaceSection, parse_hex,
    to_hex,
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
    // Interfaces of the fragments before this one: its first interface number, since the
    // composite numbers every interface in order.
    let mut base: u8 = 0;
    for fragment in fragments {
        let count = fragment.interfaces.len();
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
                if base > 0 {
                    renumber_cdc(&mut iface, base);
                }
            }
            interfaces.push(iface);
        }
        associations.extend(fragment.associations);
        // Saturates on purpose: past 255 interfaces DeviceModel::build refuses the device.
        base = base.saturating_add(u8::try_from(count).unwrap_or(u8::MAX));
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

/// A function describes itself as if alone, its interfaces numbered from 0; in a composite
/// its first interface is `base`. The CDC functional descriptors of a communications
/// interface (class 2) name interfaces by number — Union (subtype 6: the control and
/// subordinate interfaces) and Call Management (subtype 1: the data interface) — so those
/// numbers move by `base` too. Text that is not valid hex is left for DeviceModel::build to
/// report.
fn renumber_cdc(iface: &mut InterfaceSection, base: u8) {
    const CS_INTERFACE: u8 = 0x24;
    let patch = |class: Option<u8>, text: &mut Option<String>| {
        let Some(bytes) = text.as_deref().filter(|_| class == Some(2)).map(parse_hex) else {
            return;
        };
        let Ok(mut bytes) = bytes else { return };
        let mut at = 0;
        while let Some(&len) = bytes.get(at) {
            let len = usize::from(len);
            if len < 2 || at + len > bytes.len() {
                break;
            }
            if bytes[at + 1] == CS_INTERFACE && len >= 3 {
                let numbers = match bytes[at + 2] {
                    0x06 => 3..len,           // Union: bControlInterface, bSubordinateInterface0..
                    0x01 if len >= 5 => 4..5, // Call Management: bDataInterface
                    _ => 0..0,
                };
                for i in numbers {
                    bytes[at + i] = bytes[at + i].saturating_add(base);
                }
            }
            at += len;
        }
        *text = Some(to_hex(&bytes));
    };
    patch(iface.class, &mut iface.class_descriptors);
    for alt in &mut iface.alternates {
        patch(alt.class.or(iface.class), &mut alt.class_descriptors);
    }
}

/// A function's own device descriptor: `vendor_id:product_id`, the product and serial
/// strings, manufacturer "usbfn", class from the interfaces, self-powered at 100 mA, up to
/// SuperSpeed. Functions override what differs (`..function_device(...)`).
pub fn function_device(
    vendor_id: u16,
    product_id: u16,
    product: Option<String>,
    serial: Option<String>,
) -> DeviceSection {
    DeviceSection {
        vendor_id,
        product_id,
        class: 0,
        subclass: 0,
        protocol: 0,
        product,
        serial,
        ..default_device()
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
