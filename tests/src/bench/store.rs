//! mfad's store on its own, in this process: what the two store calls of a
//! login cost without the bus around them — `has_confirmed_factor` (Start) and
//! `check_factor` (Answer: check, record the use, commit with fsync).

use super::codes::{now, totp_now, user_name, Secrets, DIGITS, PERIOD};
use mfad::mechanism::{Algorithm, FactorData, FactorKind, Mechanism, OtpParams, Response, Totp};
use mfad::store::{FactorRecord, FactorStore, SqliteStore};
use std::path::Path;
use std::time::Instant;

/// Durations (ns) of `has_confirmed_factor` and of a successful `check_factor`,
/// one each for `users` users, in a new store in `dir`.
pub fn time_store(
    dir: &Path,
    secrets: &Secrets,
    users: u64,
) -> Result<(Vec<u64>, Vec<u64>), String> {
    let store = SqliteStore::open(dir).map_err(|e| e.to_string())?;
    let created = now();
    let factors: Vec<FactorRecord> = (0..users)
        .map(|i| FactorRecord {
            id: format!("s{i:015x}"),
            user: user_name(i),
            kind: FactorKind::Totp,
            label: "bench".into(),
            counter: 0,
            data: FactorData::Otp(OtpParams {
                secret: secrets.secret(i).to_vec(),
                algorithm: Algorithm::Sha1,
                digits: DIGITS,
                period: PERIOD as u32,
                drift: 0,
            }),
            confirmed: true,
            approved: false,
            created,
            last_used: 0,
            expires: 0,
        })
        .collect();
    store
        .insert_confirmed(&factors)
        .map_err(|e| e.to_string())?;
    let totp = Totp {
        skew: 1,
        max_drift: 10,
        defaults: Default::default(),
    };
    let (mut reads, mut uses) = (Vec::new(), Vec::new());
    for i in 0..users {
        let user = user_name(i);
        let code = totp_now(&secrets.secret(i));
        let started = Instant::now();
        let found = store
            .has_confirmed_factor(&user)
            .map_err(|e| e.to_string())?;
        reads.push(elapsed(started));
        if !found {
            return Err(format!("{user} is not in the store"));
        }
        let at = now();
        let started = Instant::now();
        let lockout = mfad::store::Lockout {
            max_failures: 10,
            unlock_after: 900,
        };
        let used = store
            .check_factor(&user, &format!("s{i:015x}"), at, lockout, &mut |f| {
                totp.verify(f, &(), &Response::Text(code.clone()), at)
            })
            .map_err(|e| e.to_string())?;
        uses.push(elapsed(started));
        if !matches!(used, mfad::store::CodeCheck::Accepted(_)) {
            return Err(format!("the store refused {user}'s code"));
        }
    }
    Ok((reads, uses))
}

fn elapsed(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}
