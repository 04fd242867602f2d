//! `sotto block`, `sotto unblock` and `sotto blocked`: people this device no longer shows or
//! plays. Blocking is private: nobody, the blocked member included, is told.

use anyhow::{Result, bail};
use sotto_client::Profile;
use sotto_net::invite::encode_b64;

use crate::members::{find_listed, short_id};
use crate::session;

/// Blocks (or unblocks) the member called `who` on a joined server.
pub(crate) async fn block(server: Option<&str>, who: &str, block: bool) -> Result<()> {
    let profile = Profile::open()?;
    let saved = profile.server(server)?;
    let session = session::connect(&profile, &saved, None).await?;
    let members = session.client.list_members().await?;
    let member = find_listed(&members, who)?;
    let label = format!(
        "{} ({})",
        sotto_client::chat::printable(&member.display_name),
        short_id(&member.public_key)
    );
    if member.member_id == session.member_id {
        bail!("that is you; you cannot block yourself");
    }
    if block {
        profile.block(&member.public_key, &member.display_name)?;
        println!(
            "Blocked {label}: their messages are hidden and their voice is silent on this device. \
             Nobody is told. `sotto unblock {}` undoes it.",
            &encode_b64(&member.public_key)[..11]
        );
    } else if profile.unblock(&member.public_key)? {
        println!("Unblocked {label}.");
    } else {
        println!("{label} was not blocked.");
    }
    Ok(())
}

/// Lists the blocked members.
pub(crate) fn list() -> Result<()> {
    let blocked = Profile::open()?.blocked_keys()?;
    if blocked.is_empty() {
        println!("You have blocked nobody.");
        return Ok(());
    }
    println!("Blocked on this device:");
    for key in blocked {
        println!(
            "  {} ({})",
            sotto_client::chat::printable(&key.display_name),
            short_id(&key.public_key)
        );
    }
    Ok(())
}
