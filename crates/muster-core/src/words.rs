//! Counts in sentences for people: `1 user`, `2 users`, never `user(s)`.

/// `n` and the noun that goes with it: `count(1, "user", "users")` is `1 user`,
/// `count(0, "user", "users")` is `0 users`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn one_is_singular_and_everything_else_plural() {
        assert_eq!(count(1, "user", "users"), "1 user");
        assert_eq!(count(0, "user", "users"), "0 users");
        assert_eq!(count(2, "role change", "role changes"), "2 role changes");
        assert_eq!(count(21, "group", "groups"), "21 groups");
    }
}
