//! Packet capture calls: validated, then answered as a dataplane without capture.

#[allow(clippy::wildcard_imports)]
use super::*;

impl State {
    /// CaptureStart: validated like the real service, then NOT_ACTIVE because a software
    /// dataplane has no packet capture (the real service answers the same with offload off).
    pub fn capture_start(
        &mut self,
        req: pb::CaptureStartRequest,
    ) -> Result<pb::CaptureStartResponse> {
        let cfg = req.capture_config.unwrap_or_default();
        validate::port("capture_config.udp_src_port", cfg.udp_src_port)?;
        validate::port("capture_config.udp_dst_port", cfg.udp_dst_port)?;
        let sink = cfg.sink_node_ip.unwrap_or_default();
        validate::ipv6_text("capture_config.sink_node_ip", &sink.address)?;
        for iface in &cfg.interfaces {
            let _: pb::CaptureInterfaceType = validate::known_enum(
                "capture_config.interfaces.interface_type",
                iface.interface_type,
            )?;
            match &iface.spec {
                Some(pb::captured_interface::Spec::VfName(name)) => {
                    validate::id("capture_config.interfaces.vf_name", name)?;
                }
                Some(pb::captured_interface::Spec::PfIndex(i)) => {
                    if *i > u32::from(u8::MAX) {
                        return Err(InvalidArgument::new(
                            "capture_config.interfaces.pf_index",
                            "must be at most 255",
                        )
                        .into());
                    }
                }
                None => {
                    return Err(
                        InvalidArgument::new("capture_config.interfaces.spec", "missing").into(),
                    );
                }
            }
        }
        Err(ServiceError::NotActive.into())
    }

    /// CaptureStop: nothing is ever capturing.
    pub fn capture_stop(
        &mut self,
        _req: pb::CaptureStopRequest,
    ) -> Result<pb::CaptureStopResponse> {
        Err(ServiceError::NotActive.into())
    }

    /// CaptureStatus: never active.
    pub fn capture_status(
        &mut self,
        _req: pb::CaptureStatusRequest,
    ) -> Result<pb::CaptureStatusResponse> {
        Ok(pb::CaptureStatusResponse {
            status: None,
            is_active: false,
            capture_config: None,
        })
    }
}
