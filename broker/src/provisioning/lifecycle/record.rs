//! HR records: parsed from CSV (a header row naming the columns) or JSON (an array of objects),
//! each checked on its own so a bad row names its line and field without stopping the others.

use chrono::NaiveDate;
use std::collections::BTreeMap;

/// Employee, contractor or vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmploymentType {
    Employee,
    Contractor,
    Vendor,
}

impl EmploymentType {
    pub fn as_str(self) -> &'static str {
        match self {
            EmploymentType::Employee => "employee",
            EmploymentType::Contractor => "contractor",
            EmploymentType::Vendor => "vendor",
        }
    }
}

/// What HR says of one person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HrRecord {
    /// The correlation key.
    pub employee_number: String,
    /// From the `username` column, else the local part of the email, else `first.last`.
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    /// The manager's employee number.
    pub manager: Option<String>,
    pub department: String,
    pub title: String,
    pub location: String,
    pub employment_type: EmploymentType,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    /// The sponsor's employee number (contractors and vendors).
    pub sponsor: Option<String>,
    /// An explicit status: `active`, `leave` (suspended) or `terminated`.
    pub status: Option<String>,
}

/// A row that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line in the file (CSV) or 1-based position in the array (JSON).
    pub line: usize,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.field, self.message)
    }
}

/// The usable records (with their line) and the errors of the others.
#[derive(Debug, Default)]
pub struct Parsed {
    pub records: Vec<(usize, HrRecord)>,
    pub errors: Vec<RowError>,
}

const COLUMNS: &[&str] = &[
    "employee_number",
    "username",
    "first_name",
    "last_name",
    "email",
    "manager",
    "department",
    "title",
    "location",
    "employment_type",
    "start_date",
    "end_date",
    "sponsor",
    "status",
];

/// Parses a feed; `json` picks the format (else CSV). A file that cannot be read as a whole
/// (no header, not JSON) is one error at line 1.
pub fn parse(text: &str, json: bool) -> Parsed {
    let rows: Vec<(usize, BTreeMap<String, String>)> = if json {
        match serde_json::from_str::<Vec<serde_json::Map<String, serde_json::Value>>>(text) {
            Ok(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, o)| {
                    let m = o
                        .into_iter()
                        .map(|(k, v)| {
                            let s = match v {
                                serde_json::Value::String(s) => s,
                                serde_json::Value::Null => String::new(),
                                other => other.to_string(),
                            };
                            (k, s)
                        })
                        .collect();
                    (i + 1, m)
                })
                .collect(),
            Err(e) => {
                return Parsed {
                    records: Vec::new(),
                    errors: vec![RowError {
                        line: e.line(),
                        field: "file".into(),
                        message: format!("not a JSON array of objects: {e}"),
                    }],
                };
            }
        }
    } else {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(true)
            .from_reader(text.as_bytes());
        let headers: Vec<String> = match reader.headers() {
            Ok(h) => h.iter().map(|c| c.to_lowercase()).collect(),
            Err(e) => {
                return Parsed {
                    records: Vec::new(),
                    errors: vec![RowError {
                        line: 1,
                        field: "header".into(),
                        message: e.to_string(),
                    }],
                };
            }
        };
        let mut out = Vec::new();
        let mut errors = Vec::new();
        if let Some(unknown) = headers.iter().find(|h| !COLUMNS.contains(&h.as_str())) {
            errors.push(RowError {
                line: 1,
                field: unknown.clone(),
                message: format!("unknown column (known: {})", COLUMNS.join(", ")),
            });
        }
        for rec in reader.records() {
            match rec {
                Ok(r) => {
                    let line = r.position().map(|p| p.line() as usize).unwrap_or(0);
                    let m = headers
                        .iter()
                        .cloned()
                        .zip(r.iter().map(str::to_owned))
                        .collect();
                    out.push((line, m));
                }
                Err(e) => errors.push(RowError {
                    line: e.position().map(|p| p.line() as usize).unwrap_or(0),
                    field: "row".into(),
                    message: e.to_string(),
                }),
            }
        }
        let mut parsed = Parsed {
            records: Vec::new(),
            errors,
        };
        for (line, m) in out {
            match record(&m) {
                Ok(r) => parsed.records.push((line, r)),
                Err((field, message)) => parsed.errors.push(RowError {
                    line,
                    field,
                    message,
                }),
            }
        }
        return parsed;
    };
    let mut parsed = Parsed::default();
    for (line, m) in rows {
        match record(&m) {
            Ok(r) => parsed.records.push((line, r)),
            Err((field, message)) => parsed.errors.push(RowError {
                line,
                field,
                message,
            }),
        }
    }
    parsed
}

type FieldResult<T> = Result<T, (String, String)>;

fn bad(field: &str, message: impl Into<String>) -> (String, String) {
    (field.to_string(), message.into())
}

fn date(m: &BTreeMap<String, String>, field: &str) -> FieldResult<Option<NaiveDate>> {
    match m.get(field).map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| bad(field, format!("{s:?} is not a date (YYYY-MM-DD)"))),
    }
}

fn username_from(m: &BTreeMap<String, String>, first: &str, last: &str) -> FieldResult<String> {
    let raw = match m
        .get("username")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        Some(u) => u.to_string(),
        None => match m
            .get("email")
            .and_then(|e| e.split_once('@'))
            .map(|(l, _)| l.trim())
        {
            Some(local) if !local.is_empty() => local.to_string(),
            _ => format!("{first}.{last}"),
        },
    };
    let u = raw.to_lowercase();
    crate::identity::identities::validate_username(&u)
        .map_err(|e| bad("username", e.to_string()))?;
    Ok(u)
}

fn record(m: &BTreeMap<String, String>) -> FieldResult<HrRecord> {
    let get = |k: &str| m.get(k).map(|s| s.trim().to_string()).unwrap_or_default();
    let opt = |k: &str| Some(get(k)).filter(|s| !s.is_empty());
    let employee_number = get("employee_number");
    if employee_number.is_empty() {
        return Err(bad(
            "employee_number",
            "missing (it is the correlation key)",
        ));
    }
    if employee_number.len() > 64 {
        return Err(bad("employee_number", "longer than 64 characters"));
    }
    let first_name = get("first_name");
    let last_name = get("last_name");
    if first_name.is_empty() && last_name.is_empty() {
        return Err(bad(
            "first_name",
            "a name is needed (first_name or last_name)",
        ));
    }
    let employment_type = match get("employment_type").to_lowercase().as_str() {
        "" | "employee" => EmploymentType::Employee,
        "contractor" => EmploymentType::Contractor,
        "vendor" => EmploymentType::Vendor,
        other => {
            return Err(bad(
                "employment_type",
                format!("{other:?}: use employee, contractor or vendor"),
            ));
        }
    };
    let start_date = date(m, "start_date")?;
    let end_date = date(m, "end_date")?;
    if let (Some(s), Some(e)) = (start_date, end_date)
        && e < s
    {
        return Err(bad("end_date", "before start_date"));
    }
    let sponsor = opt("sponsor");
    if employment_type != EmploymentType::Employee {
        if sponsor.is_none() {
            return Err(bad(
                "sponsor",
                format!("a {} needs a sponsor", employment_type.as_str()),
            ));
        }
        if end_date.is_none() {
            return Err(bad(
                "end_date",
                format!("a {} needs an end date", employment_type.as_str()),
            ));
        }
    }
    let status = match opt("status").map(|s| s.to_lowercase()) {
        None => None,
        Some(s) if ["active", "leave", "terminated"].contains(&s.as_str()) => Some(s),
        Some(s) => {
            return Err(bad(
                "status",
                format!("{s:?}: use active, leave or terminated"),
            ));
        }
    };
    let email = opt("email");
    if let Some(e) = &email
        && !e.contains('@')
    {
        return Err(bad("email", format!("{e:?} is not an email address")));
    }
    Ok(HrRecord {
        username: username_from(m, &first_name.to_lowercase(), &last_name.to_lowercase())?,
        employee_number,
        first_name,
        last_name,
        email,
        manager: opt("manager"),
        department: get("department"),
        title: get("title"),
        location: get("location"),
        employment_type,
        start_date,
        end_date,
        sponsor,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_rows_name_their_line_and_field_and_good_rows_pass() {
        let csv = "employee_number,first_name,last_name,email,department,employment_type,start_date,end_date,sponsor\n\
                   E1,Ann,Lee,ann@example.com,eng,employee,2026-01-05,,\n\
                   E2,Bo,Ray,bo@example.com,eng,contractor,2026-01-05,,\n\
                   E3,Cy,Day,cy@example.com,eng,employee,2026-13-01,,\n\
                   ,No,Key,nk@example.com,eng,employee,,,\n\
                   E5,Di,Fox,di@example.com,ops,vendor,2026-01-01,2026-06-30,E1\n";
        let p = parse(csv, false);
        let lines: Vec<usize> = p.records.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![2, 6]);
        assert_eq!(p.records[0].1.username, "ann");
        let errs: Vec<String> = p.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].starts_with("line 3: sponsor:"), "{errs:?}");
        assert!(errs[1].starts_with("line 4: start_date:"), "{errs:?}");
        assert!(errs[2].starts_with("line 5: employee_number:"), "{errs:?}");
        let j = parse(
            r#"[{"employee_number":"E9","first_name":"Ed","last_name":"Ng","department":"eng"}]"#,
            true,
        );
        assert_eq!(j.records[0].1.username, "ed.ng");
        assert!(parse("[1,", true).errors[0].field == "file");
    }
}
