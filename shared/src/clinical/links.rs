//! Single-use answer links: the patient's SMS or email carries a link to answer an alert
//! without signing in. The link's token is 32 random bytes (256 bits, unguessable, so a fast
//! hash suffices); only its SHA-256 is stored. Opening the link (`GET`) shows a page and changes
//! nothing, because mail scanners and link previews follow links; only the page's form
//! (`POST`) answers, once. A link expires after `ANSWER_LINK_HOURS` (24).

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use sha2::Digest;

use super::flow::Answer;
use crate::platform::time::format_utc;
use crate::wiring::{FromWiring, Wiring, WiringError};

/// A link as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerLink {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    pub patient_id: String,
    pub alert_id: String,
    pub expires_at: String,
    pub used_at: Option<String>,
    pub answer: Option<Answer>,
}

impl AnswerLink {
    /// Whether it may still answer at `now`.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.used_at.is_none() && format_utc(now) < self.expires_at
    }
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Where links point, and how long they last; no base URL: no links (the message only asks the
/// patient to open the app).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerLinks {
    pub base_url: Option<String>,
    pub lifetime_hours: i64,
}

impl FromWiring for AnswerLinks {
    /// `ANSWER_LINK_BASE_URL` (the HTTP API's URL), `ANSWER_LINK_HOURS` (24).
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self {
            base_url: w.settings.optional("ANSWER_LINK_BASE_URL").map(|u| u.trim_end_matches('/').to_owned()),
            lifetime_hours: w.settings.parsed("ANSWER_LINK_HOURS", 24)?,
        })
    }
}

impl AnswerLinks {
    /// A new link for an alert: its URL and the record to store.
    pub fn issue(&self, patient_id: &str, alert_id: &str, now: DateTime<Utc>) -> Option<(String, AnswerLink)> {
        let base = self.base_url.as_deref()?;
        let mut random = [0u8; 32];
        // Without randomness there is no safe link: the message goes without one.
        getrandom::fill(&mut random).ok()?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
        let link = AnswerLink {
            token_hash: token_hash(&token),
            patient_id: patient_id.to_owned(),
            alert_id: alert_id.to_owned(),
            expires_at: format_utc(now + Duration::hours(self.lifetime_hours)),
            used_at: None,
            answer: None,
        };
        Some((format!("{base}/alerts/answer/{token}"), link))
    }
}

/// The page a link opens: the question and one button per answer, each a form that POSTs
/// back to the same address. It names no reading and no patient: whoever holds the link sees
/// only the question.
pub fn question_page() -> String {
    let buttons: String = [
        (Answer::ApproveNurse, "Tell my nurse"),
        (Answer::ApproveDoctor, "Tell my doctor"),
        (Answer::ApproveEms, "Call emergency services"),
        (Answer::ApproveAll, "Tell all of them"),
        (Answer::Decline, "I do not need help"),
    ]
    .iter()
    .map(|(answer, label)| format!(r#"<form method="post"><input type="hidden" name="answer" value="{}"><button type="submit">{label}</button></form>"#, answer.as_str()))
    .collect();
    page("May we tell your care team?", &format!("<p>Your latest readings may need attention. Who should we tell?</p>{buttons}"))
}

/// A small HTML page.
pub fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex"><title>{title}</title></head><body><main><h1>{title}</h1>{body}</main></body></html>"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_carries_an_unguessable_token_stored_only_as_its_hash_and_expires() {
        let links = AnswerLinks { base_url: Some("https://api.example.org".into()), lifetime_hours: 24 };
        let now = Utc::now();
        let (url, link) = links.issue("P1", "a-1", now).unwrap();
        let token = url.strip_prefix("https://api.example.org/alerts/answer/").unwrap();
        assert_eq!(token.len(), 43, "32 bytes, base64url");
        assert_eq!(link.token_hash, token_hash(token));
        assert!(!link.token_hash.contains(token));
        assert!(link.is_open(now + Duration::hours(23)));
        assert!(!link.is_open(now + Duration::hours(24)));
        assert!(!AnswerLink { used_at: Some(format_utc(now)), ..link.clone() }.is_open(now));
        let (other, _) = links.issue("P1", "a-1", now).unwrap();
        assert_ne!(url, other, "each link its own token");
        assert_eq!(AnswerLinks::default().issue("P1", "a-1", now), None, "no base URL: no link");
    }

    #[test]
    fn the_page_offers_every_answer_as_a_post_and_names_nothing_about_the_patient() {
        let html = question_page();
        for answer in Answer::ALL {
            assert!(html.contains(&format!(r#"value="{}""#, answer.as_str())), "{}", answer.as_str());
        }
        assert_eq!(html.matches(r#"<form method="post">"#).count(), 5);
        assert!(!html.contains("<a "), "no link on the page for a scanner to follow");
    }
}
