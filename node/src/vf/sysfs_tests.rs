//! Discovery against fake sysfs trees built in a temporary directory.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use super::*;

/// A fake `<root>/bus/pci/devices` with device directories, attribute files and links laid out
/// as in the brief: `virtfnN -> ../<vf>`, `physfn -> ../<pf>`.
struct FakeSysfs {
    root: tempfile::TempDir,
}

impl FakeSysfs {
    fn new() -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(root.path().join("bus/pci/devices")).expect("mkdir");
        Self { root }
    }

    fn root(&self) -> &Path {
        self.root.path()
    }

    fn dir(&self, address: &str) -> PathBuf {
        self.root().join("bus/pci/devices").join(address)
    }

    fn write(&self, address: &str, file: &str, content: &str) {
        fs::write(self.dir(address).join(file), content).expect("write attribute");
    }

    /// A device with vendor and class.
    fn device(&self, address: &str, vendor: &str, class: &str) {
        fs::create_dir_all(self.dir(address)).expect("mkdir device");
        self.write(address, "vendor", &format!("{vendor}\n"));
        self.write(address, "class", &format!("{class}\n"));
    }

    /// A PF with SR-IOV attributes and `numvfs` VFs at consecutive functions from `offset`.
    fn pf(&self, address: &str, vendor: &str, numvfs: u32, offset: u32) -> Vec<String> {
        self.device(address, vendor, "0x020000");
        self.write(address, "sriov_numvfs", &format!("{numvfs}\n"));
        self.write(address, "sriov_totalvfs", "127\n");
        self.write(address, "sriov_offset", &format!("{offset}\n"));
        self.write(address, "sriov_stride", "1\n");
        let pf: PciAddress = address.parse().expect("pf address");
        (0..numvfs)
            .map(|n| {
                let rid = u32::from(pf.routing_id()) + offset + n;
                let vf = format!(
                    "{:04x}:{:02x}:{:02x}.{:x}",
                    0,
                    rid >> 8,
                    (rid >> 3) & 0x1f,
                    rid & 7
                );
                self.vf(address, n, &vf, address);
                vf
            })
            .collect()
    }

    /// VF `n` of `pf` at `vf`, its `physfn` leading to `physfn`.
    fn vf(&self, pf: &str, n: u32, vf: &str, physfn: &str) {
        self.device(vf, "0x15b3", "0x020000");
        symlink(format!("../{vf}"), self.dir(pf).join(format!("virtfn{n}"))).expect("virtfn");
        symlink(format!("../{physfn}"), self.dir(vf).join("physfn")).expect("physfn");
    }

    fn config(&self, multiport_eswitch: bool) -> VfConfig {
        VfConfig {
            mode: VfMode::Sysfs {
                root: self.root().to_path_buf(),
                pf_base: DEFAULT_PF_BASE,
                multiport_eswitch,
            },
        }
    }
}

fn ids(vfs: &[Vf]) -> Vec<&str> {
    vfs.iter().map(Vf::id).collect()
}

fn names(vfs: &[Vf]) -> Vec<&str> {
    vfs.iter().map(Vf::device_name).collect()
}

#[test]
fn sysfs_finds_vfs_of_mellanox_network_pfs() {
    let fake = FakeSysfs::new();
    fake.pf("0000:3b:00.0", "0x15b3", 3, 2);
    // an Intel NIC with SR-IOV: not Mellanox
    fake.pf("0000:18:00.0", "0x8086", 2, 16);
    // a Mellanox NIC missing one SR-IOV attribute
    fake.pf("0000:5e:00.0", "0x15b3", 2, 2);
    fs::remove_file(fake.dir("0000:5e:00.0").join("sriov_stride")).expect("rm");
    // a Mellanox device that is not a network controller
    fake.device("0000:af:00.0", "0x15b3", "0x120000");
    // SR-IOV capable but no VF enabled
    fake.pf("0000:d8:00.0", "0x15b3", 0, 2);
    // not a PCI address
    fs::create_dir_all(fake.dir("not-a-device")).expect("mkdir");

    let vfs = discover(&fake.config(false)).expect("discover");
    assert_eq!(ids(&vfs), ["0000:3b:00.2", "0000:3b:00.3", "0000:3b:00.4"]);
    assert_eq!(
        names(&vfs),
        [
            "0000:3b:00.0_representor_vf0",
            "0000:3b:00.0_representor_vf1",
            "0000:3b:00.0_representor_vf2",
        ]
    );
    let parts = vfs[0].pci_address().expect("pci").parts();
    assert_eq!(
        [parts.domain, parts.bus, parts.slot, parts.function],
        ["0000", "3b", "00", "2"]
    );
}

#[test]
fn sysfs_multiport_eswitch_names() {
    let fake = FakeSysfs::new();
    fake.pf("0000:3b:00.0", "0x15b3", 2, 2);
    let vfs = discover(&fake.config(true)).expect("discover");
    assert_eq!(
        names(&vfs),
        [
            "0000:3b:00.0_representor_c0pf0vf0",
            "0000:3b:00.0_representor_c0pf0vf1",
        ]
    );
}

#[test]
fn sysfs_full_pf_orders_by_index_with_hex_devices() {
    let fake = FakeSysfs::new();
    let created = fake.pf("0000:3b:00.0", "0x15b3", 126, 2);
    let vfs = discover(&fake.config(false)).expect("discover");
    assert_eq!(ids(&vfs), created);
    assert_eq!(vfs[10].id(), "0000:3b:01.4"); // virtfn10 after virtfn9, not after virtfn1
    assert_eq!(vfs[78].id(), "0000:3b:0a.0");
    assert_eq!(vfs[78].device_name(), "0000:3b:00.0_representor_vf78");
    assert_eq!(vfs[125].id(), "0000:3b:0f.7");
    assert_eq!(vfs[125].device_name(), "0000:3b:00.0_representor_vf125");
}

#[test]
fn sysfs_offset_is_the_pfs() {
    let fake = FakeSysfs::new();
    // an offset of 8: the first VF is 0000:3b:01.0 and is VF 0
    fake.pf("0000:3b:00.0", "0x15b3", 2, 8);
    let vfs = discover(&fake.config(false)).expect("discover");
    assert_eq!(ids(&vfs), ["0000:3b:01.0", "0000:3b:01.1"]);
    assert_eq!(
        names(&vfs),
        [
            "0000:3b:00.0_representor_vf0",
            "0000:3b:00.0_representor_vf1",
        ]
    );
}

#[test]
fn sysfs_bad_content_is_skipped() {
    let fake = FakeSysfs::new();
    fake.pf("0000:3b:00.0", "0x15b3", 1, 2);
    fake.pf("0000:5e:00.0", "0x15b3", 1, 2);
    fake.write("0000:5e:00.0", "sriov_offset", "two\n");
    fake.pf("0000:86:00.0", "0x15b3", 1, 2);
    fs::write(fake.dir("0000:86:00.0").join("sriov_numvfs"), [0xff, 0xfe]).expect("write");
    // a VF link to something that is not an address, and one whose physfn is another PF
    symlink("../garbage", fake.dir("0000:3b:00.0").join("virtfn1")).expect("link");
    fake.vf("0000:3b:00.0", 2, "0000:3b:00.4", "0000:5e:00.0");
    // a VF that does not fit the offset (below it)
    fake.vf("0000:3b:00.0", 3, "0000:3b:00.1", "0000:3b:00.0");
    // a VF link whose target does not exist: no physfn, the listing PF is used
    symlink("../0000:3b:00.3", fake.dir("0000:3b:00.0").join("virtfn4")).expect("link");
    // not virtfn links
    symlink("../0000:3b:00.5", fake.dir("0000:3b:00.0").join("virtfnX")).expect("link");
    let vfs = discover(&fake.config(false)).expect("discover");
    assert_eq!(ids(&vfs), ["0000:3b:00.2", "0000:3b:00.3"]);
    assert_eq!(
        names(&vfs),
        [
            "0000:3b:00.0_representor_vf0",
            "0000:3b:00.0_representor_vf1",
        ]
    );
}

#[test]
fn sysfs_without_vfs_synthesizes() {
    let fake = FakeSysfs::new();
    fake.device("0000:18:00.0", "0x8086", "0x020000");
    let vfs = discover(&fake.config(false)).expect("discover");
    assert_eq!(vfs.len(), 126);
    assert_eq!(vfs[0].id(), "0000:03:00.3");
    assert_eq!(vfs[125].id(), "0000:03:10.0");
    assert_eq!(vfs[125].device_name(), "0000:03:00.0_representor_vf125");

    // no bus/pci/devices at all: the same
    let empty = tempfile::tempdir().expect("tempdir");
    let config = VfConfig::sysfs(empty.path(), "0000:04:00.0", true).expect("config");
    let vfs = discover(&config).expect("discover");
    assert_eq!(vfs[0].id(), "0000:04:00.3");
    assert_eq!(vfs[0].device_name(), "0000:04:00.0_representor_c0pf0vf0");
}

#[test]
fn sysfs_unlistable_devices_dir_is_an_error() {
    let root = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(root.path().join("bus/pci")).expect("mkdir");
    fs::write(root.path().join("bus/pci/devices"), "not a directory").expect("write");
    let config = VfConfig::sysfs(root.path(), "0000:03:00.0", false).expect("config");
    let err = discover(&config).expect_err("not a dir");
    match &err {
        VfError::Io { path, .. } => assert!(path.ends_with("bus/pci/devices"), "{err}"),
        other => panic!("unexpected error {other}"),
    }
    assert!(err.to_string().contains("bus/pci/devices"), "{err}");
}

#[test]
fn config_pf_base_errors() {
    let err = VfConfig::sysfs("/sys", "0000:03:00", false).expect_err("bad");
    assert!(matches!(
        err,
        VfError::PfBase(PciAddressError::Format { .. })
    ));
    let config = VfConfig::sysfs("/nonexistent-sysfs-root", "0000:03:1f.0", false).expect("ok");
    assert!(matches!(
        discover(&config),
        Err(VfError::PfBaseRange { .. })
    ));
    assert_eq!(
        VfConfig::default(),
        VfConfig::sysfs("/sys", "0000:03:00.0", false).expect("ok")
    );
}

#[test]
fn tap_mode_discovery() {
    let vfs = discover(&VfConfig::tap(DEFAULT_TAP_COUNT)).expect("tap");
    assert_eq!(vfs.len(), 126);
    assert_eq!(
        (vfs[0].id(), vfs[0].device_name()),
        ("dtapvf_0", "net_tap2")
    );
    assert_eq!(
        (vfs[125].tap_name(), vfs[125].device_name()),
        (Some("dtapvf_125"), "net_tap127")
    );
    let vfs = discover(&VfConfig::tap(3)).expect("tap");
    assert_eq!(ids(&vfs), ["dtapvf_0", "dtapvf_1", "dtapvf_2"]);
    assert_eq!(names(&vfs), ["net_tap2", "net_tap3", "net_tap4"]);
}

/// The default TAP pool has exactly the software dataplane's default VF ports.
#[test]
fn tap_pool_matches_software_dataplane() {
    let dataplane = ferrinet_dataplane::DataplaneConfig::default();
    let pool = tap_vfs(DEFAULT_TAP_COUNT);
    let ports: Vec<&str> = dataplane.vf_ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names(&pool), ports);
}

#[test]
fn sysfs_second_pf_of_a_device_cannot_reuse_names() {
    let fake = FakeSysfs::new();
    fake.pf("0000:3b:00.0", "0x15b3", 2, 2);
    // the second port's VFs after the first's: its VF 0 would also be `..00.0_representor_vf0`
    fake.pf("0000:3b:00.1", "0x15b3", 2, 3);
    let vfs = discover(&fake.config(false)).expect("discover");
    assert_eq!(ids(&vfs), ["0000:3b:00.2", "0000:3b:00.3"]);
}
