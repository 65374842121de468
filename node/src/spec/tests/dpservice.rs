use std::net::Ipv6Addr;

use ferrinet_proto::dpservice::v1 as dp;

use super::{V6, interface_pb, lb_pb};
use crate::spec::dpservice::{
    DataplaneInterface, address_text, create_interface_request, create_lb_prefix_request,
    create_load_balancer_request, create_nat_request, create_prefix_request, create_vip_request,
    ip_address, parse_address, parse_interface, parse_ip_address, parse_listed_load_balancer,
    parse_load_balancer, parse_nat, parse_prefix, parse_prefixes, parse_underlay, parse_vip,
};
use crate::spec::{
    InterfaceSpec, LbProtocol, Metering, validate_interface, validate_load_balancer,
};

fn iface() -> InterfaceSpec {
    validate_interface(&interface_pb(), &V6).unwrap().1
}

fn ipa(v: dp::IpVersion, a: &str) -> dp::IpAddress {
    dp::IpAddress {
        ipver: v as i32,
        address: a.as_bytes().to_vec(),
    }
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

#[test]
fn create_interface_sends_text_addresses_and_none_as_unspecified() {
    let spec = iface();
    assert_eq!(
        create_interface_request("vm-1", &spec, 23, "net_tap2"),
        dp::CreateInterfaceRequest {
            interface_type: dp::InterfaceType::Virtual as i32,
            interface_id: b("vm-1"),
            vni: 23,
            ipv4_config: Some(dp::IpConfig {
                primary_address: b("10.0.0.5")
            }),
            ipv6_config: Some(dp::IpConfig {
                primary_address: b("fd00::5")
            }),
            pxe_config: None,
            device_name: "net_tap2".into(),
            metering_parameters: Some(dp::MeteringParams {
                total_rate: 1000,
                public_rate: 100
            }),
            preferred_underlay_route: vec![],
            hostname: "vm-1.example".into(),
        }
    );
    let mut v4_only = spec.clone();
    v4_only.ipv6 = None;
    v4_only.hostname = None;
    let r = create_interface_request("vm-1", &v4_only, 23, "net_tap2");
    assert_eq!(r.ipv6_config.unwrap().primary_address, b("::"));
    assert_eq!(r.hostname, "");
    let mut v6_only = spec;
    v6_only.ipv4 = None;
    let r = create_interface_request("vm-1", &v6_only, 23, "net_tap2");
    assert_eq!(r.ipv4_config.unwrap().primary_address, b("0.0.0.0"));
}

#[test]
fn sub_object_requests() {
    let spec = iface();
    let vip = create_vip_request("vm-1", spec.virtual_ip.unwrap());
    assert_eq!(vip.vip_ip, Some(ipa(dp::IpVersion::Ipv4, "203.0.113.5")));
    let nat = create_nat_request("vm-1", &spec.nat.unwrap());
    assert_eq!(
        (nat.nat_ip, nat.min_port, nat.max_port),
        (Some(ipa(dp::IpVersion::Ipv4, "203.0.113.9")), 1024, 2048)
    );
    let p = create_prefix_request("vm-1", "fd00:1::/64".parse().unwrap());
    assert_eq!(
        p.prefix,
        Some(dp::Prefix {
            ip: Some(ipa(dp::IpVersion::Ipv6, "fd00:1::")),
            length: 64,
            underlay_route: vec![],
        })
    );
    assert_eq!(p.interface_id, b("vm-1"));
    let l = create_lb_prefix_request("vm-1", "10.2.0.1/32".parse().unwrap());
    assert_eq!(l.prefix.unwrap().length, 32);
}

#[test]
fn create_load_balancer_uses_protocol_numbers() {
    let (_, spec) = validate_load_balancer(&lb_pb(), &V6).unwrap();
    let r = create_load_balancer_request("lb-1", &spec, 23);
    assert_eq!(r.loadbalancer_id, b("lb-1"));
    assert_eq!(r.vni, 23);
    assert_eq!(
        r.loadbalanced_ip,
        Some(ipa(dp::IpVersion::Ipv4, "203.0.113.80"))
    );
    let ports: Vec<(i32, u32)> = r
        .loadbalanced_ports
        .iter()
        .map(|p| (p.protocol, p.port))
        .collect();
    assert_eq!(ports, vec![(6, 80), (6, 443), (17, 443)]);
}

#[test]
fn addresses_in_bytes_fields() {
    assert_eq!(address_text(Ipv6Addr::LOCALHOST), b("::1"));
    assert_eq!(
        parse_address("f", b"10.0.0.1"),
        Ok("10.0.0.1".parse().unwrap())
    );
    assert_eq!(parse_address("f", b"").unwrap_err().field, "f");
    assert_eq!(
        parse_address("f", &[0xff, 0xfe]).unwrap_err().to_string(),
        "f: not utf-8 text"
    );
    assert_eq!(
        parse_underlay("underlay_route", b"fc00:1::b:0:13"),
        Ok("fc00:1::b:0:13".parse().unwrap())
    );
    assert_eq!(
        parse_underlay("underlay_route", b"10.0.0.1")
            .unwrap_err()
            .field,
        "underlay_route"
    );
    // Addresses as the real service never writes them are still just text to parse or refuse.
    assert!(parse_underlay("u", b" fc00::1").is_err());

    let v4 = ipa(dp::IpVersion::Ipv4, "10.0.0.1");
    assert_eq!(
        parse_ip_address("vip_ip", Some(&v4)),
        Ok("10.0.0.1".parse().unwrap())
    );
    assert_eq!(
        ip_address("10.0.0.1".parse::<std::net::IpAddr>().unwrap()),
        v4
    );
    let cases = [
        (None, "vip_ip"),
        (Some(ipa(dp::IpVersion::Ipv6, "10.0.0.1")), "vip_ip.address"),
        (Some(ipa(dp::IpVersion::Ipv4, "fd00::1")), "vip_ip.address"),
        (Some(ipa(dp::IpVersion::Ipv4, "x")), "vip_ip.address"),
        (
            Some(dp::IpAddress {
                ipver: 9,
                address: b("10.0.0.1"),
            }),
            "vip_ip.ipver",
        ),
    ];
    for (msg, field) in cases {
        assert_eq!(
            parse_ip_address("vip_ip", msg.as_ref()).unwrap_err().field,
            field
        );
    }
    let long = dp::Prefix {
        ip: Some(v4),
        length: 33,
        underlay_route: vec![],
    };
    assert_eq!(
        parse_prefix("prefix", Some(&long)).unwrap_err().field,
        "prefix.length"
    );
}

#[test]
fn prefix_lists_read_back_with_underlays() {
    let p = |a: &str, v, len, ul: &str| dp::Prefix {
        ip: Some(ipa(v, a)),
        length: len,
        underlay_route: b(ul),
    };
    let list = vec![
        p("10.1.0.0", dp::IpVersion::Ipv4, 24, "fc00:1::b:0:2"),
        p("fd00:1::", dp::IpVersion::Ipv6, 64, "fc00:1::b:0:3"),
    ];
    let got = parse_prefixes(&list).unwrap();
    assert_eq!(
        got.get(&"fd00:1::/64".parse().unwrap()),
        Some(&"fc00:1::b:0:3".parse().unwrap())
    );
    assert_eq!(got.len(), 2);
    let mut bad = list.clone();
    bad[1].length = 129;
    assert_eq!(
        parse_prefixes(&bad).unwrap_err().field,
        "prefixes[1].length"
    );
    let mut bad = list.clone();
    bad[0].underlay_route.clear();
    assert_eq!(
        parse_prefixes(&bad).unwrap_err().field,
        "prefixes[0].underlay_route"
    );
    let mut bad = list;
    bad[1].ip = None;
    assert_eq!(parse_prefixes(&bad).unwrap_err().field, "prefixes[1].ip");
}

#[test]
fn interfaces_read_back() {
    let msg = dp::Interface {
        id: b("vm-1"),
        vni: 23,
        primary_ipv4: b("10.0.0.5"),
        primary_ipv6: b("::"),
        underlay_route: b("fc00:1::b:0:1"),
        pci_name: "net_tap2".into(),
        metering_params: None,
        hostname: String::new(),
    };
    let got = parse_interface(&msg).unwrap();
    assert_eq!(
        got,
        DataplaneInterface {
            id: "vm-1".into(),
            vni: 23,
            ipv4: Some("10.0.0.5".parse().unwrap()),
            ipv6: None,
            underlay: "fc00:1::b:0:1".parse().unwrap(),
            device: "net_tap2".into(),
            metering: Metering::default(),
            hostname: None,
        }
    );
    let mut spec = iface();
    spec.ipv6 = None;
    assert!(got.matches(&spec, 23));
    assert!(!got.matches(&spec, 24));
    spec.ipv4 = Some("10.0.0.6".parse().unwrap());
    assert!(!got.matches(&spec, 23));

    let bad = |f: fn(&mut dp::Interface)| {
        let mut m = msg.clone();
        f(&mut m);
        parse_interface(&m).unwrap_err().field
    };
    assert_eq!(bad(|m| m.id.clear()), "id");
    assert_eq!(bad(|m| m.primary_ipv4 = b("fd00::1")), "primary_ipv4");
    assert_eq!(bad(|m| m.primary_ipv6 = b("10.0.0.1")), "primary_ipv6");
    assert_eq!(bad(|m| m.underlay_route = b("nope")), "underlay_route");
}

#[test]
fn vip_nat_and_load_balancers_read_back() {
    let vip = dp::GetVipResponse {
        status: None,
        vip_ip: Some(ipa(dp::IpVersion::Ipv4, "203.0.113.5")),
        underlay_route: b("fc00::2"),
    };
    assert_eq!(
        parse_vip(&vip),
        Ok(("203.0.113.5".parse().unwrap(), "fc00::2".parse().unwrap()))
    );
    let mut bad = vip.clone();
    bad.vip_ip = Some(ipa(dp::IpVersion::Ipv6, "fd00::1"));
    assert_eq!(parse_vip(&bad).unwrap_err().field, "vip_ip.address");

    let nat = dp::GetNatResponse {
        status: None,
        nat_ip: Some(ipa(dp::IpVersion::Ipv4, "203.0.113.9")),
        min_port: 1024,
        max_port: 2048,
        underlay_route: b("fc00::3"),
    };
    let (n, ul) = parse_nat(&nat).unwrap();
    assert_eq!((n, ul), (iface().nat.unwrap(), "fc00::3".parse().unwrap()));
    for (f, field) in [
        (
            (|r: &mut dp::GetNatResponse| r.min_port = 70000) as fn(&mut _),
            "min_port",
        ),
        (|r| r.max_port = 1024, "max_port"),
        (|r| r.max_port = 65536, "max_port"),
        (|r| r.nat_ip = None, "nat_ip"),
        (|r| r.underlay_route.clear(), "underlay_route"),
    ] {
        let mut r = nat.clone();
        f(&mut r);
        assert_eq!(parse_nat(&r).unwrap_err().field, field);
    }

    let lb = dp::GetLoadBalancerResponse {
        status: None,
        loadbalanced_ip: Some(ipa(dp::IpVersion::Ipv4, "203.0.113.80")),
        vni: 23,
        loadbalanced_ports: vec![
            dp::LbPort {
                port: 443,
                protocol: 17,
            },
            dp::LbPort {
                port: 80,
                protocol: 6,
            },
            dp::LbPort {
                port: 443,
                protocol: 6,
            },
        ],
        underlay_route: b("fc00::7"),
    };
    let got = parse_load_balancer(&lb).unwrap();
    let (_, spec) = validate_load_balancer(&lb_pb(), &V6).unwrap();
    assert!(got.matches(&spec, 23));
    assert!(!got.matches(&spec, 22));
    let mut fewer = spec.clone();
    fewer.ports.remove(&(LbProtocol::Udp, 443));
    assert!(!got.matches(&fewer, 23));
    let mut bad = lb.clone();
    bad.loadbalanced_ports[2].protocol = 1;
    assert_eq!(
        parse_load_balancer(&bad).unwrap_err().field,
        "ports[2].protocol"
    );
    let mut bad = lb.clone();
    bad.loadbalanced_ports[0].port = 1 << 16;
    assert_eq!(
        parse_load_balancer(&bad).unwrap_err().field,
        "ports[0].port"
    );

    let listed = dp::Loadbalancer {
        id: b("lb-1"),
        vni: 23,
        ip: lb.loadbalanced_ip.clone(),
        ports: lb.loadbalanced_ports.clone(),
        underlay_route: lb.underlay_route.clone(),
    };
    assert_eq!(
        parse_listed_load_balancer(&listed),
        Ok(("lb-1".into(), got))
    );
    let mut bad = listed;
    bad.ip = None;
    assert_eq!(parse_listed_load_balancer(&bad).unwrap_err().field, "ip");
}
