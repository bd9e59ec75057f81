//! Inputs for the parsers' exhaustive sweeps (tests only).

/// Every string made of up to `pieces` pieces of `alphabet` (the empty one
/// included), each once.
pub fn joinings(alphabet: &[&str], pieces: usize) -> Vec<String> {
    let mut all = vec![String::new()];
    let mut longest = all.clone();
    for _ in 0..pieces {
        let next: Vec<String> = longest
            .iter()
            .flat_map(|prefix| alphabet.iter().map(move |piece| format!("{prefix}{piece}")))
            .collect();
        all.extend(next.iter().cloned());
        longest = next;
    }
    all
}
