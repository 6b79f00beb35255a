//! [`ChatTemplate`]: Hugging Face chat templates rendered with minijinja.
//!
//! Compatible with transformers' `apply_chat_template`: `trim_blocks` and `lstrip_blocks`,
//! Python string methods (`minijinja_contrib` pycompat), `raise_exception`, `strftime_now`,
//! `tojson`, and the variables `messages`, `add_generation_prompt`, `bos_token` and
//! `eos_token`. The template is compiled once; a render error is an error, never empty text.

use std::path::Path;

use minijinja::{Environment, ErrorKind, Value};
use serde::{Deserialize, Serialize};

use crate::error::read_json;
use crate::{Error, Result};

const NAME: &str = "chat";

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message with any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// A compiled chat template with the model's special tokens.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    origin: String,
    bos_token: Option<String>,
    eos_token: Option<String>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("origin", &self.origin)
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish()
    }
}

impl ChatTemplate {
    /// Compiles `source`; `origin` names it in errors.
    pub fn new(
        source: &str,
        origin: &str,
        bos_token: Option<String>,
        eos_token: Option<String>,
    ) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<Value, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_function(
            "strftime_now",
            |fmt: String| -> Result<Value, minijinja::Error> {
                Ok(Value::from(strftime_now(&fmt)))
            },
        );
        env.add_template_owned(NAME, source.to_string())
            .map_err(|source| Error::Template {
                origin: origin.to_string(),
                source,
            })?;
        Ok(ChatTemplate {
            env,
            source: source.to_string(),
            origin: origin.to_string(),
            bos_token,
            eos_token,
        })
    }

    /// The template of a Hugging Face model folder: `chat_template.jinja`, else
    /// `chat_template` in `tokenizer_config.json` (a string, or a list of named templates of
    /// which `default` is taken), with `bos_token`/`eos_token` from `tokenizer_config.json`.
    /// `None` when the folder has no template.
    pub fn from_model_dir(dir: &Path) -> Result<Option<Self>> {
        let config_path = dir.join("tokenizer_config.json");
        let config = if config_path.is_file() {
            Some(read_json(&config_path)?)
        } else {
            None
        };
        let token = |key: &str| -> Option<String> {
            let v = config.as_ref()?.get(key)?;
            v.as_str()
                .or_else(|| v.get("content").and_then(|c| c.as_str()))
                .map(str::to_string)
        };
        let (bos, eos) = (token("bos_token"), token("eos_token"));
        let jinja = dir.join("chat_template.jinja");
        if jinja.is_file() {
            let text = std::fs::read_to_string(&jinja).map_err(|e| Error::io(&jinja, e))?;
            return Self::new(&text, &jinja.display().to_string(), bos, eos).map(Some);
        }
        let Some(tmpl) = config.as_ref().and_then(|c| c.get("chat_template")) else {
            return Ok(None);
        };
        let text = match tmpl {
            serde_json::Value::String(s) => Some(s.as_str()),
            serde_json::Value::Array(list) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .or_else(|| list.first())
                .and_then(|t| t.get("template"))
                .and_then(|t| t.as_str()),
            _ => None,
        };
        let text = text.ok_or_else(|| Error::Config {
            origin: config_path.display().to_string(),
            field: "chat_template".into(),
            problem: "expected a string or a list of {name, template}".into(),
        })?;
        Self::new(
            text,
            &format!("{} (chat_template)", config_path.display()),
            bos,
            eos,
        )
        .map(Some)
    }

    /// The template text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Where the template came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Renders `messages`, ending with the assistant prefix when `add_generation_prompt`.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let err = |source| Error::Template {
            origin: self.origin.clone(),
            source,
        };
        let tmpl = self.env.get_template(NAME).map_err(err)?;
        tmpl.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.clone().unwrap_or_default(),
            eos_token => self.eos_token.clone().unwrap_or_default(),
        })
        .map_err(err)
    }
}

/// The current UTC time formatted like Python's `strftime` (the common specifiers:
/// `%Y %m %d %e %B %b %A %a %H %I %M %S %p %j %y %%`).
fn strftime_now(fmt: &str) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    format_time(secs, fmt)
}

/// `secs` since 1970 (UTC) formatted as [`strftime_now`] does.
pub(crate) fn format_time(secs: i64, fmt: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let cum = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = cum[(m - 1) as usize] + d + i64::from(leap && m > 2);
    let weekday = DAYS[days.rem_euclid(7) as usize];
    let month = MONTHS[(m - 1) as usize];
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&y.to_string()),
            Some('y') => out.push_str(&format!("{:02}", y % 100)),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('e') => out.push_str(&format!("{d:>2}")),
            Some('B') => out.push_str(month),
            Some('b') => out.push_str(&month[..3]),
            Some('A') => out.push_str(weekday),
            Some('a') => out.push_str(&weekday[..3]),
            Some('H') => out.push_str(&format!("{h:02}")),
            Some('I') => out.push_str(&format!("{:02}", (h + 11) % 12 + 1)),
            Some('p') => out.push_str(if h < 12 { "AM" } else { "PM" }),
            Some('M') => out.push_str(&format!("{mi:02}")),
            Some('S') => out.push_str(&format!("{s:02}")),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates_like_python() {
        // 2024-07-23 14:05:09 UTC, a Tuesday, day 205.
        let t = 1_721_743_509;
        assert_eq!(format_time(t, "%d %b %Y"), "23 Jul 2024");
        assert_eq!(
            format_time(t, "%A %B %e %H:%M:%S %j %p %I"),
            "Tuesday July 23 14:05:09 205 PM 02"
        );
        assert_eq!(format_time(0, "%Y-%m-%d %a"), "1970-01-01 Thu");
    }

    #[test]
    fn hf_features_render() {
        let src = "{% for m in messages %}\n  {{ m['role'] | upper }}:{{ m.content.strip() }}{{ eos_token }}\n{% endfor %}\
                   {% if add_generation_prompt %}A:{% endif %}{{ messages | length | tojson }}";
        let t = ChatTemplate::new(src, "t", None, Some("</s>".into())).unwrap();
        let out = t.render(&[ChatMessage::user(" hi ")], true).unwrap();
        // lstrip_blocks strips before block tags only, as jinja2 does.
        assert_eq!(out, "  USER:hi</s>\nA:1");
        let t = ChatTemplate::new(
            "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}ok",
            "t2",
            None,
            None,
        )
        .unwrap();
        let e = t.render(&[ChatMessage::system("x")], false).unwrap_err();
        let chain = format!("{e}: {:?}", std::error::Error::source(&e));
        assert!(
            chain.contains("first must be user") && chain.contains("t2"),
            "{chain}"
        );
        assert!(t.render(&[ChatMessage::user("x")], false).unwrap() == "ok");
        assert!(strftime_now("%Y").len() == 4);
    }
}
