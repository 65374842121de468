//! Start-up resync: dataplane objects the node does not know (left by a crash between a
//! dataplane call and the store commit, or by someone else) are removed before the node reports
//! ready; what is missing is re-created by the object actors.

use std::collections::HashSet;

use ferrinet_proto::dpservice::v1 as dp;

use crate::dataplane::client::{Dp, DpError};

/// Removes every interface and load balancer whose id is not in `interfaces` / `lbs`; returns
/// how many were removed.
pub async fn remove_orphans(
    dp: &Dp,
    interfaces: &HashSet<String>,
    lbs: &HashSet<String>,
) -> Result<usize, DpError> {
    let listed = dp
        .call("ListInterfaces", |mut c| async move {
            c.list_interfaces(dp::ListInterfacesRequest {}).await
        })
        .await?;
    let mut removed = 0;
    for i in listed.interfaces {
        let id = String::from_utf8_lossy(&i.id).to_string();
        if !interfaces.contains(&id) {
            tracing::info!(interface = %id, vni = i.vni, "removing orphan interface");
            crate::interface::purge(dp, &id).await?;
            removed += 1;
        }
    }
    let listed = dp
        .call("ListLoadBalancers", |mut c| async move {
            c.list_load_balancers(dp::ListLoadBalancersRequest {}).await
        })
        .await?;
    for lb in listed.loadbalancers {
        let id = String::from_utf8_lossy(&lb.id).to_string();
        if !lbs.contains(&id) {
            tracing::info!(loadbalancer = %id, "removing orphan load balancer");
            crate::load_balancer::purge(dp, &id).await?;
            removed += 1;
        }
    }
    Ok(removed)
}
