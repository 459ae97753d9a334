use super::*;
use crate::config::DeviceConfig;

fn build(text: &str) -> Result<DeviceModel, ValidationError> {
    DeviceModel::build(&DeviceConfig::from_toml(text).expect("toml parses"))
}

const HEAD: &str = "[device]\nvendor_id = 1\nproduct_id = 2\n";

fn expect_err(body: &str, field_part: &str, problem_part: &str) {
    let err = build(&format!("{HEAD}{body}")).expect_err("invalid");
    let text = err.to_string();
    assert!(
        text.contains(field_part),
        "{text:?} should name {field_part:?}"
    );
    assert!(
        text.contains(problem_part),
        "{text:?} should say {problem_part:?}"
    );
}

#[test]
fn numbers_are_allocated_in_order() {
    let m = build(&format!(
        "{HEAD}
        [[interfaces]]
        name = \"a\"
        endpoints = [{{ direction = \"in\", type = \"bulk\" }}, {{ direction = \"out\", type = \"bulk\" }}]
        [[interfaces]]
        name = \"b\"
        endpoints = [{{ direction = \"in\", type = \"interrupt\" }}, {{ address = 0x03, type = \"bulk\" }}]
        "
    ))
    .expect("valid");
    let addrs: Vec<Vec<u8>> = m
        .interfaces
        .iter()
        .map(|i| {
            i.alternates[0]
                .endpoints
                .iter()
                .map(|e| e.address.0)
                .collect()
        })
        .collect();
    assert_eq!(addrs, vec![vec![0x81, 0x01], vec![0x82, 0x03]]);
    assert_eq!(m.interfaces[1].number, 1);
    assert_eq!(m.pipes.len(), 5, "pipe 0 plus four data pipes");
    assert_eq!(m.interfaces[1].alternates[0].endpoints[1].pipe, PipeId(4));
    assert_eq!(
        m.interfaces[0].alternates[0].endpoints[0]
            .at(BusSpeed::Full)
            .w_max_packet_size,
        64
    );
}

#[test]
fn alternates_share_automatic_endpoint_numbers() {
    let m = build(&format!(
        "{HEAD}
        [[interfaces]]
        name = \"a\"
        endpoints = [{{ direction = \"in\", type = \"bulk\" }}]
        [[interfaces.alternates]]
        endpoints = [{{ direction = \"in\", type = \"isochronous\", max_packet = 1023 }}]
        "
    ))
    .expect("valid");
    let alts = &m.interfaces[0].alternates;
    assert_eq!(alts[1].endpoints[0].address, alts[0].endpoints[0].address);
    assert_eq!(alts[1].endpoints[0].pipe, alts[0].endpoints[0].pipe);
}

#[test]
fn errors_say_how_to_give_per_speed_values_and_fix_a_direction() {
    expect_err(
        "[[interfaces]]\nname = \"a\"\nendpoints = [{ direction = \"in\", type = \"bulk\", max_packet = 512 }]\n",
        "interfaces[1] \"a\".endpoints[1].max_packet (full)",
        "max_packet = { full = 64, high = 512, super = 1024 }",
    );
    expect_err(
        "[[interfaces]]\nname = \"a\"\n[[interfaces.alternates]]\nendpoints = [{ address = 0x01, direction = \"in\", type = \"bulk\" }]\n",
        "interfaces[1] \"a\".alternates[1].endpoints[1].direction",
        "\"in\" with address = 0x01 (bit 7 clear: OUT) is not allowed: the direction of bit 7",
    );
}

#[test]
fn errors_name_the_field_and_the_rule() {
    expect_err(
        "[[interfaces]]\nname = \"a\"\nendpoints = [{ direction = \"in\", type = \"bulk\", max_packet = 100 }]\n",
        "interfaces[1] \"a\".endpoints[1].max_packet (full)",
        "8, 16, 32 or 64",
    );
    expect_err(
        "[[interfaces]]\nname = \"a\"\nendpoints = [{ direction = \"in\", type = \"bulk\", max_packet = { full = 64, high = 256 } }]\n",
        "max_packet (high)",
        "512",
    );
    expect_err(
        "[[interfaces]]\nname = \"a\"\nendpoints = [{ address = 0x81, type = \"bulk\" }, { address = 0x81, type = \"bulk\" }]\n",
        "interfaces[1].endpoints[2].address",
        "duplicate endpoint address",
    );
    expect_err(
        "[[interfaces]]\nname = \"a\"\nguid = \"{1234}\"\n",
        ".guid",
        "GUID",
    );
    expect_err(
        "[[interfaces]]\nname = \"a\"\n[[interfaces]]\nname = \"a\"\n",
        "interfaces[2].name",
        "duplicate interface name",
    );
    expect_err(
        &format!("[[interfaces]]\nname = \"{}\"\n", "n".repeat(40)),
        "interfaces[1].name",
        "limit of 39",
    );
    expect_err("", "interfaces", "at least one interface");
    expect_err(
        "[[configurations]]\ninterfaces = [\"nope\"]\n[[interfaces]]\nname = \"a\"\n",
        "configurations[1].interfaces",
        "no interface named \"nope\"",
    );
    expect_err(
        "[[interfaces]]\nname = \"a\"\nendpoints = [{ address = 0x00, type = \"bulk\" }]\n",
        "interfaces[1] \"a\".endpoints[1].address",
        "0x01..=0x0f",
    );
    expect_err(
        "[[interfaces]]\nname = \"a\"\nendpoints = [{ direction = \"in\", type = \"interrupt\", interval = { high = 17 } }]\n",
        "interval (high)",
        "1..=16",
    );
    expect_err(
        "[[interfaces]]\nname = \"a\"\n[[interfaces]]\nname = \"b\"\n[[interfaces]]\nname = \"c\"\n[[associations]]\ninterfaces = [\"a\", \"c\"]\nclass = 2\n",
        "associations[1].interfaces",
        "consecutive",
    );
}

#[test]
fn too_many_endpoints_hits_the_genericusbfn_limit() {
    let eps: Vec<String> = (0..16)
        .map(|_| "{ direction = \"in\", type = \"interrupt\" }".to_owned())
        .collect();
    let err = build(&format!(
        "{HEAD}[[interfaces]]\nname = \"a\"\nendpoints = [{}]\n",
        eps.join(", ")
    ))
    .expect_err("16 endpoints");
    assert!(err.to_string().contains("limit of 15"), "{err}");
}

#[test]
fn a_configuration_holds_at_most_255_interfaces() {
    let ifaces = |n: usize| -> String {
        (0..n)
            .map(|i| format!("[[interfaces]]\nname = \"i{i}\"\n"))
            .collect()
    };
    let model = build(&format!("{HEAD}{}", ifaces(255))).expect("255 interfaces");
    let config = model.descriptor_set(BusSpeed::High).expect("descriptors");
    assert_eq!(config.configurations[0][4], 255, "bNumInterfaces");
    let err = build(&format!("{HEAD}{}", ifaces(256))).expect_err("256 do not fit bNumInterfaces");
    assert!(
        err.to_string().contains("bNumInterfaces") && err.to_string().contains("255"),
        "{err}"
    );
}

#[test]
fn registry_blob_adapts_packet_sizes_per_speed() {
    // Interface (2 endpoints) + bulk IN 512 + interrupt OUT 8 (size fixed by the 0x80 mask).
    let m = build(&format!(
        "{HEAD}[[interfaces]]\nname = \"a\"\ndescriptor = \"09 04 07 00 02 ff 00 00 05  07 05 81 02 00 02 00  07 05 02 03 08 80 04\"\n"
    ))
    .expect("valid blob");
    let alt = &m.interfaces[0].alternates[0];
    assert_eq!(
        m.interfaces[0].number, 0,
        "bInterfaceNumber is assigned, not taken from the blob"
    );
    assert_eq!(alt.class.0, 0xff);
    let bulk = &alt.endpoints[0];
    assert_eq!(bulk.at(BusSpeed::Full).w_max_packet_size, 64);
    assert_eq!(bulk.at(BusSpeed::High).w_max_packet_size, 512);
    assert_eq!(bulk.at(BusSpeed::Super).w_max_packet_size, 1024);
    let int = &alt.endpoints[1];
    assert_eq!(int.at(BusSpeed::Full).w_max_packet_size, 8);
    assert_eq!(int.at(BusSpeed::Full).interval, 1);
    assert_eq!(int.at(BusSpeed::High).interval, 4);
}

#[test]
fn malformed_registry_blobs_are_errors() {
    expect_err(
        "[[interfaces]]\nname = \"a\"\ndescriptor = \"09 04 00 00 02 ff 00 00 00\"\n",
        ".descriptor",
        "bNumEndpoints is 2",
    );
    expect_err(
        "[[interfaces]]\nname = \"a\"\ndescriptor = \"09 04 00 00\"\n",
        ".descriptor",
        "malformed",
    );
    expect_err(
        "[[interfaces]]\nname = \"a\"\ndescriptor = \"0g\"\n",
        ".descriptor",
        "not a hex byte",
    );
    expect_err(
        "[[interfaces]]\nname = \"a\"\ndescriptor = \"09 04 00 00 00 ff 00 00 00\"\nclass = 3\n",
        ".descriptor",
        "not both",
    );
    // A standard top-level descriptor among an interface's (found by the config_toml fuzz
    // target: an OTHER_SPEED_CONFIGURATION after the endpoint made the generated
    // configuration unparsable for a host).
    expect_err(
        "[[interfaces]]\nname = \"a\"\ndescriptor = \"09 04 07 00 01 ff 00 00 05  07 05 81 02 00 02 00  07 07 02 03 08 80 04\"\n",
        ".descriptor",
        "OTHER_SPEED_CONFIGURATION descriptor inside an interface",
    );
    expect_err(
        "[[interfaces]]\nname = \"a\"\nclass_descriptors = \"12 01 00 02 00 00 00 40 01 00 02 00 00 01 00 00 00 01\"\n",
        ".class_descriptors",
        "DEVICE descriptor inside an interface",
    );
}

#[test]
fn class_descriptors_must_be_well_formed() {
    expect_err(
        "[[interfaces]]\nname = \"a\"\nclass_descriptors = \"09 21 11 01\"\n",
        "class_descriptors",
        "malformed",
    );
    let m = build(&format!("{HEAD}[[interfaces]]\nname = \"a\"\nclass = 3\nclass_descriptors = \"09 21 11 01 00 01 22 34 00\"\n"))
        .expect("HID descriptor");
    assert_eq!(m.interfaces[0].alternates[0].class_descriptors.len(), 9);
}

#[test]
fn strings_are_deduplicated_and_bounded() {
    let m = build(
        "[device]\nvendor_id = 1\nproduct_id = 2\nmanufacturer = \"x\"\nproduct = \"x\"\n[[interfaces]]\nname = \"a\"\nstring = \"y\"\n",
    )
    .expect("valid");
    assert_eq!(m.strings.len(), 2);
    let long = "s".repeat(127);
    let err = build(&format!("[device]\nvendor_id = 1\nproduct_id = 2\nproduct = \"{long}\"\n[[interfaces]]\nname = \"a\"\n"))
        .expect_err("too long");
    assert!(err.to_string().contains("device.product"), "{err}");
}

#[test]
fn a_compatible_id_is_checked() {
    expect_err(
        "[[interfaces]]\nname = \"a\"\ncompatible_id = \"winusb\"\n",
        "interfaces[1] \"a\".compatible_id",
        "A-Z, 0-9 and _",
    );
    expect_err(
        "[[interfaces]]\nname = \"a\"\ncompatible_id = \"TOOLONGID\"\n",
        "compatible_id",
        "1 to 8",
    );
}
