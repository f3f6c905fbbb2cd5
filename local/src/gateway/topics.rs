//! MQTT topic filters and IoT policy resource patterns.

/// Whether an MQTT topic filter (`+` one level, `#` the rest) matches a topic name. Filters that
/// start with a wildcard do not match `$`-topics (MQTT 3.1.1 §4.7.2). As on AWS IoT Core, and
/// unlike the specification, `a/#` does not match `a` itself.
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), Some(_)) => return true,
            (Some("#"), None) => return false,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// A shared subscription's group and the filter it shares (`$share/<group>/<filter>`).
pub fn shared(filter: &str) -> Option<(&str, &str)> {
    filter.strip_prefix("$share/")?.split_once('/')
}

/// Whether a filter is well formed: `#` only last and alone in its level, `+` alone in its level;
/// a shared one names a group (up to 128 characters, no `+` or `#`) and a well-formed filter.
pub fn valid_filter(filter: &str) -> bool {
    if filter.starts_with("$share/") {
        return shared(filter).is_some_and(|(group, inner)| {
            !group.is_empty() && group.chars().count() <= 128 && !group.contains(['+', '#']) && !inner.starts_with("$share/") && valid_filter(inner)
        });
    }
    if filter.is_empty() {
        return false;
    }
    let levels: Vec<_> = filter.split('/').collect();
    levels.iter().enumerate().all(|(i, level)| match *level {
        "#" => i == levels.len() - 1,
        "+" => true,
        other => !other.contains('#') && !other.contains('+'),
    })
}

/// IAM-style glob: `*` any run of characters, `?` exactly one.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            pi += 1;
            mark = ti;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_as_aws_iot_core_matches_them() {
        assert!(filter_matches("a/+/c", "a/b/c"));
        assert!(filter_matches("a/#", "a/b/c"));
        assert!(!filter_matches("a/#", "a"), "AWS: `a/#` does not match its parent (MQTT says it does)");
        assert!(!filter_matches("a/+", "a/b/c"));
        assert!(!filter_matches("#", "$aws/things/x"));
        assert!(filter_matches("$aws/things/x/jobs/#", "$aws/things/x/jobs/notify"));
        assert!(valid_filter("a/+/#"));
        assert!(!valid_filter("a/#/b"));
        assert!(!valid_filter("a/b+"));
        assert_eq!(shared("$share/ward-7/alerts/#"), Some(("ward-7", "alerts/#")));
        assert!(valid_filter("$share/ward-7/alerts/#"));
        assert!(!valid_filter("$share/ward+/alerts"), "no wildcard in a group name");
        assert!(!valid_filter("$share//alerts") && !valid_filter("$share/g"), "a group and a filter are needed");
    }

    #[test]
    fn globs_match_arns() {
        assert!(glob_matches("arn:aws:iot:*:*:topic/$aws/rules/*", "arn:aws:iot:us-east-1:0:topic/$aws/rules/FHIRIngest"));
        assert!(!glob_matches("arn:aws:iot:*:*:topic/dev-1", "arn:aws:iot:us-east-1:0:topic/dev-2"));
        assert!(glob_matches("a?c*", "abcdef"));
        assert!(!glob_matches("a?c", "ac"));
    }
}
