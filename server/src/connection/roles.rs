//! A session's requests about roles, moderation and the audit log. The store decides each
//! change in the transaction that makes it; this only moves it there and tells everyone.

use sotto_net::proto::control::{ControlFrame, ErrorCode, MAX_AUDIT_PER_PAGE};
use sotto_net::roles::{Moderation, Permissions, RoleChange};
use tracing::{info, warn};

use super::{Session, SessionError, error_frame};
use crate::data_dir::unix_now;

impl Session {
    /// The server's role book; from now on the member hears of every change.
    pub(super) fn read_roles(&mut self) -> ControlFrame {
        self.roles_wanted = true;
        ControlFrame::Roles(Box::new((**self.shared.roles.load()).clone()))
    }

    /// Changes roles, overrides or slow mode, if the member may.
    pub(super) async fn manage_roles(
        &mut self,
        change: RoleChange,
    ) -> Result<ControlFrame, SessionError> {
        let shared = self.shared.clone();
        let actor = self.member.id;
        let outcome = tokio::task::spawn_blocking(move || {
            let outcome = shared
                .store
                .change_roles(shared.server.id, actor, &change, unix_now());
            if matches!(outcome, Ok(Ok(_))) {
                shared.reload_roles();
            }
            outcome
        })
        .await
        .expect("role changes do not panic");
        Ok(match outcome {
            Ok(Ok(_)) => {
                info!(member = self.member.id, "roles changed");
                ControlFrame::RolesManaged
            }
            Ok(Err(refused)) => error_frame(refused.code, refused.reason),
            Err(error) => {
                warn!("could not change roles: {error}");
                error_frame(
                    ErrorCode::Internal,
                    "the relay could not change the roles; try again",
                )
            }
        })
    }

    /// Kicks, bans, unbans, times out or mutes someone, if the member may.
    pub(super) async fn moderate(
        &mut self,
        moderation: Moderation,
    ) -> Result<ControlFrame, SessionError> {
        let shared = self.shared.clone();
        let actor = self.member.id;
        let action = moderation.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let outcome = shared
                .store
                .moderate(shared.server.id, actor, &action, unix_now());
            if matches!(outcome, Ok(Ok(_))) {
                shared.reload_roles();
            }
            outcome
        })
        .await
        .expect("moderation does not panic");
        Ok(match outcome {
            Ok(Ok(done)) => {
                info!(member = self.member.id, action = ?moderation_name(&moderation), "moderated");
                if let Some(removed) = done.removed {
                    let reason = match moderation {
                        Moderation::Ban { .. } | Moderation::BanKey { .. } => {
                            "you were banned from this server"
                        }
                        _ => "you were removed from this server",
                    };
                    self.shared.removed_from_server(&[removed], reason);
                }
                ControlFrame::Moderated {
                    public_key: done.public_key,
                }
            }
            Ok(Err(refused)) => error_frame(refused.code, refused.reason),
            Err(error) => {
                warn!("could not moderate: {error}");
                error_frame(
                    ErrorCode::Internal,
                    "the relay could not do that; try again",
                )
            }
        })
    }

    /// A page of the audit log, for members who may read it.
    pub(super) async fn read_audit(
        &self,
        before: u64,
        limit: u16,
    ) -> Result<ControlFrame, SessionError> {
        if !self
            .shared
            .roles
            .load()
            .may(self.member.id, Permissions::VIEW_AUDIT_LOG)
        {
            return Ok(error_frame(
                ErrorCode::Forbidden,
                "you need the \"audit\" permission to read the audit log; ask an admin",
            ));
        }
        let shared = self.shared.clone();
        let limit = u32::from(limit).clamp(1, MAX_AUDIT_PER_PAGE as u32);
        let page = tokio::task::spawn_blocking(move || {
            shared.store.audit_log(shared.server.id, before, limit)
        })
        .await
        .expect("reading the audit log does not panic");
        Ok(match page {
            Ok((entries, more)) => ControlFrame::AuditLog { entries, more },
            Err(error) => {
                warn!("could not read the audit log: {error}");
                error_frame(
                    ErrorCode::Internal,
                    "the relay could not read the audit log; try again",
                )
            }
        })
    }
}

fn moderation_name(moderation: &Moderation) -> &'static str {
    match moderation {
        Moderation::Kick { .. } => "kick",
        Moderation::Ban { .. } | Moderation::BanKey { .. } => "ban",
        Moderation::Unban { .. } => "unban",
        Moderation::Timeout { .. } => "timeout",
        Moderation::Mute { .. } => "mute",
    }
}
