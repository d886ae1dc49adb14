//! OpenWhisk's placement arithmetic: the Java string hash of the namespace and the action, the
//! home invoker it gives, and the coprime steps used to probe the others.

/// Java's `String.hashCode`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 code units, wrapping
/// in 32 bits. Matching it keeps an action's home invoker the one OpenWhisk would pick.
pub fn java_string_hash(text: &str) -> i32 {
    text.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The numbers in `1..=n` that are coprime to `n` and to each other (in increasing order).
/// Stepping through `n` invokers by any of them visits each invoker exactly once.
pub fn pairwise_coprimes_up_to(n: usize) -> Vec<usize> {
    let mut steps: Vec<usize> = Vec::new();
    for candidate in 1..=n {
        if gcd(candidate, n) == 1 && steps.iter().all(|&step| gcd(step, candidate) == 1) {
            steps.push(candidate);
        }
    }
    steps
}

/// The home invoker (index below `invokers`) and the probing step of an activation of `action`
/// (`ns[/pkg]/name`, no leading slash) invoked by `namespace`.
///
/// `invokers` must be at least 1; with 0 the answer is `(0, 1)` and meaningless.
pub fn home_and_step(namespace: &str, action: &str, invokers: usize) -> (usize, usize) {
    if invokers == 0 {
        return (0, 1);
    }
    let hash = (java_string_hash(namespace) ^ java_string_hash(action)).unsigned_abs();
    let hash = usize::try_from(hash).unwrap_or(usize::MAX);
    let steps = pairwise_coprimes_up_to(invokers);
    let step = steps.get(hash % steps.len().max(1)).copied().unwrap_or(1);
    (hash % invokers, step)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_known_values() {
        // Values computed by Java's String.hashCode.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash("guest"), 98_708_952);
        // Long strings overflow and wrap like Java's int arithmetic.
        assert_eq!(java_string_hash("guest/hello"), 86_723_035);
        assert_eq!(
            java_string_hash("guest/some-longer-action-name"),
            -578_535_840
        );
        // Characters outside the BMP count as two UTF-16 units.
        assert_eq!(java_string_hash("😀"), 1_772_899);
    }

    #[test]
    fn coprime_steps_follow_openwhisk() {
        assert_eq!(pairwise_coprimes_up_to(1), vec![1]);
        assert_eq!(pairwise_coprimes_up_to(2), vec![1]);
        assert_eq!(pairwise_coprimes_up_to(6), vec![1, 5]);
        assert_eq!(pairwise_coprimes_up_to(10), vec![1, 3, 7]);
        assert_eq!(pairwise_coprimes_up_to(12), vec![1, 5, 7, 11]);
    }

    #[test]
    fn every_step_visits_every_invoker_once() {
        for invokers in 1..=16 {
            for step in pairwise_coprimes_up_to(invokers) {
                let mut seen = vec![false; invokers];
                let mut index = 0;
                for _ in 0..invokers {
                    assert!(!seen[index], "n={invokers} step={step} revisits {index}");
                    seen[index] = true;
                    index = (index + step) % invokers;
                }
            }
        }
    }

    #[test]
    fn home_is_the_hash_modulo_the_invoker_count() {
        let hash = (java_string_hash("guest") ^ java_string_hash("guest/hello")).unsigned_abs();
        let hash = usize::try_from(hash).unwrap();
        for invokers in 1..=8 {
            let (home, step) = home_and_step("guest", "guest/hello", invokers);
            assert_eq!(home, hash % invokers);
            let steps = pairwise_coprimes_up_to(invokers);
            assert_eq!(step, steps[hash % steps.len()]);
        }
        assert_eq!(home_and_step("guest", "guest/hello", 0), (0, 1));
    }
}
