//! JMESPath for `CalculatedContent` templates: the standard functions plus the connector's own
//! (`Microsoft.Health.Expressions`), with the connector's semantics:
//!
//! | function | arguments | result |
//! |---|---|---|
//! | `add`, `subtract`, `multiply` | number, number | a float if either is a float, else a 64-bit integer (wrapping, as unchecked C#) |
//! | `divide` | number, number | floats: `a / b`; integers: truncating, and dividing by 0 is an error |
//! | `pow` | number, number | floats: `a ^ b`; integers: rounded to an integer (half to even), an error out of range |
//! | `insertString` | string, string, integer | the second inserted into the first at that position (0 to its length) |
//! | `fromUnixTimestamp`, `fromUnixTimestampMs` | integer | the UTC time, as an ISO 8601 string |
//!
//! "Integer" and "float" are JSON's: `1` is an integer, `1.0` a float, as in Json.NET. A number
//! written as a string (`"78"`) is not a number here: templates use `to_number` first.

use std::sync::{Arc, OnceLock};

use jmespath::functions::{ArgumentType, CustomFunction, Signature};
use jmespath::{Context, ErrorReason, JmespathError, Rcvar, Runtime, Variable};
use serde_json::Number;

/// The runtime with the standard and the connector's functions, built once.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let mut runtime = Runtime::new();
        runtime.register_builtin_functions();
        for (name, op) in [("add", Arithmetic::Add), ("subtract", Arithmetic::Subtract), ("multiply", Arithmetic::Multiply)] {
            runtime.register_function(name, numeric(move |a, b, ctx| arithmetic(op, a, b, ctx)));
        }
        runtime.register_function("divide", numeric(divide));
        runtime.register_function("pow", numeric(pow));
        runtime.register_function(
            "insertString",
            Box::new(CustomFunction::new(
                Signature::new(vec![ArgumentType::String, ArgumentType::String, ArgumentType::Number], None),
                Box::new(insert_string),
            )),
        );
        runtime.register_function("fromUnixTimestamp", unix_time("fromUnixTimestamp", 1000));
        runtime.register_function("fromUnixTimestampMs", unix_time("fromUnixTimestampMs", 1));
        runtime
    })
}

#[derive(Clone, Copy)]
enum Arithmetic {
    Add,
    Subtract,
    Multiply,
}

/// A JSON number as the connector's functions see it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Numeric {
    Integer(i64),
    Float(f64),
}

fn numeric_of(value: &Variable) -> Option<Numeric> {
    let Variable::Number(n) = value else { return None };
    match n.as_i64() {
        Some(i) => Some(Numeric::Integer(i)),
        None => n.as_f64().map(Numeric::Float),
    }
}

fn as_f64(n: Numeric) -> f64 {
    match n {
        Numeric::Integer(i) => i as f64,
        Numeric::Float(f) => f,
    }
}

fn error(ctx: &Context<'_>, message: String) -> JmespathError {
    JmespathError::from_ctx(ctx, ErrorReason::Parse(message))
}

fn integer(i: i64) -> Result<Rcvar, JmespathError> {
    Ok(Arc::new(Variable::Number(Number::from(i))))
}

fn float(ctx: &Context<'_>, f: f64) -> Result<Rcvar, JmespathError> {
    // JSON has no infinities or NaN (Json.NET would carry them on; nothing can print them as JSON).
    Number::from_f64(f).map(|n| Arc::new(Variable::Number(n))).ok_or_else(|| error(ctx, format!("the result {f} is not a finite number")))
}

type NumericOp = dyn Fn(Numeric, Numeric, &Context<'_>) -> Result<Rcvar, JmespathError> + Send + Sync;

/// A function of two numbers.
fn numeric(op: impl Fn(Numeric, Numeric, &Context<'_>) -> Result<Rcvar, JmespathError> + Send + Sync + 'static) -> Box<CustomFunction> {
    let op: Box<NumericOp> = Box::new(op);
    Box::new(CustomFunction::new(
        Signature::new(vec![ArgumentType::Number, ArgumentType::Number], None),
        Box::new(move |args: &[Rcvar], ctx: &mut Context<'_>| {
            let (Some(a), Some(b)) = (numeric_of(&args[0]), numeric_of(&args[1])) else {
                return Err(error(ctx, "expects two numbers".into()));
            };
            op(a, b, ctx)
        }),
    ))
}

fn arithmetic(op: Arithmetic, a: Numeric, b: Numeric, ctx: &Context<'_>) -> Result<Rcvar, JmespathError> {
    match (a, b) {
        (Numeric::Integer(a), Numeric::Integer(b)) => integer(match op {
                Arithmetic::Add => a.wrapping_add(b),
                Arithmetic::Subtract => a.wrapping_sub(b),
                Arithmetic::Multiply => a.wrapping_mul(b),
        }),
        _ => {
            let (a, b) = (as_f64(a), as_f64(b));
            float(
                ctx,
                match op {
                    Arithmetic::Add => a + b,
                    Arithmetic::Subtract => a - b,
                    Arithmetic::Multiply => a * b,
                },
            )
        }
    }
}

fn divide(a: Numeric, b: Numeric, ctx: &Context<'_>) -> Result<Rcvar, JmespathError> {
    match (a, b) {
        (Numeric::Integer(_), Numeric::Integer(0)) => Err(error(ctx, "divide: attempted to divide by zero".into())),
        (Numeric::Integer(a), Numeric::Integer(b)) => integer(a.wrapping_div(b)),
        _ => float(ctx, as_f64(a) / as_f64(b)),
    }
}

fn pow(a: Numeric, b: Numeric, ctx: &Context<'_>) -> Result<Rcvar, JmespathError> {
    let result = as_f64(a).powf(as_f64(b));
    match (a, b) {
        (Numeric::Integer(_), Numeric::Integer(_)) => {
            // Convert.ToInt64(double): rounded half to even, an error outside the range.
            let rounded = result.round_ties_even();
            if rounded.is_finite() && rounded >= i64::MIN as f64 && rounded < i64::MAX as f64 {
                integer(rounded as i64)
            } else {
                Err(error(ctx, format!("pow: the result {result} is out of the range of a 64-bit integer")))
            }
        }
        _ => float(ctx, result),
    }
}

fn insert_string(args: &[Rcvar], ctx: &mut Context<'_>) -> Result<Rcvar, JmespathError> {
    let (Variable::String(text), Variable::String(inserted)) = (&*args[0], &*args[1]) else {
        return Err(error(ctx, "insertString expects two strings and an integer".into()));
    };
    let Some(Numeric::Integer(position)) = numeric_of(&args[2]) else {
        return Err(error(ctx, "Error: invalid-type, function insertString expects argument 3 to be one of the following: Integer".into()));
    };
    let length = text.chars().count();
    let Some(at) = usize::try_from(position).ok().filter(|p| *p <= length) else {
        return Err(error(ctx, format!("insertString: position {position} is outside 0..{length}")));
    };
    let byte = text.char_indices().nth(at).map_or(text.len(), |(i, _)| i);
    let mut out = String::with_capacity(text.len() + inserted.len());
    out.push_str(&text[..byte]);
    out.push_str(inserted);
    out.push_str(&text[byte..]);
    Ok(Arc::new(Variable::String(out)))
}

/// `fromUnixTimestamp` (seconds) or `fromUnixTimestampMs` (milliseconds).
fn unix_time(name: &'static str, millis_per_unit: i64) -> Box<CustomFunction> {
    Box::new(CustomFunction::new(
        Signature::new(vec![ArgumentType::Number], None),
        Box::new(move |args: &[Rcvar], ctx: &mut Context<'_>| {
            let Some(Numeric::Integer(n)) = numeric_of(&args[0]) else {
                return Err(error(ctx, format!("Error: invalid-type, function {name} expects argument 1 to be one of the following: Integer")));
            };
            let at = n.checked_mul(millis_per_unit).and_then(chrono::DateTime::from_timestamp_millis);
            let Some(at) = at else { return Err(error(ctx, format!("{name}: {n} is out of range"))) };
            Ok(Arc::new(Variable::String(crate::platform::time::format_utc(at))))
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(expression: &str) -> Result<serde_json::Value, String> {
        let compiled = runtime().compile(expression).map_err(|e| e.to_string())?;
        let data = Variable::from_json("{\"hr\": 78, \"f\": 1.5, \"s\": \"78\"}").map_err(|e| e.to_string())?;
        let out = compiled.search(data).map_err(|e| e.to_string())?;
        serde_json::to_value(&*out).map_err(|e| e.to_string())
    }

    #[test]
    fn arithmetic_keeps_integers_integers_and_floats_floats() {
        assert_eq!(eval("add(hr, `2`)").unwrap(), serde_json::json!(80));
        assert_eq!(eval("add(hr, f)").unwrap(), serde_json::json!(79.5));
        assert_eq!(eval("subtract(hr, `100`)").unwrap(), serde_json::json!(-22));
        assert_eq!(eval("multiply(f, `2`)").unwrap(), serde_json::json!(3.0));
        assert_eq!(eval("multiply(`9223372036854775807`, `2`)").unwrap(), serde_json::json!(-2), "wraps as unchecked C#");
        assert_eq!(eval("divide(`7`, `2`)").unwrap(), serde_json::json!(3), "integer division truncates");
        assert_eq!(eval("divide(`-7`, `2`)").unwrap(), serde_json::json!(-3));
        assert_eq!(eval("divide(`7.0`, `2`)").unwrap(), serde_json::json!(3.5));
        assert!(eval("divide(`7`, `0`)").unwrap_err().contains("divide by zero"));
        assert!(eval("divide(`7.0`, `0`)").is_err(), "an infinity is no JSON number");
        assert_eq!(eval("pow(`2`, `10`)").unwrap(), serde_json::json!(1024));
        assert_eq!(eval("pow(`2.0`, `0.5`)").unwrap(), serde_json::json!(std::f64::consts::SQRT_2));
        assert!(eval("pow(`9223372036854775807`, `10`)").unwrap_err().contains("out of the range"));
        // A number written as a string is not a number: templates say to_number.
        assert!(eval("add(s, `1`)").is_err());
        assert_eq!(eval("add(to_number(s), `1`)").unwrap(), serde_json::json!(79));
    }

    #[test]
    fn strings_and_times_as_the_connectors_tests_expect() {
        assert_eq!(eval("insertString('suess', 'cc', `2`)").unwrap(), "success");
        assert_eq!(eval("insertString('ab', 'c', `2`)").unwrap(), "abc");
        assert!(eval("insertString('ab', 'c', `3`)").is_err());
        assert!(eval("insertString('ab', 'c', `1.0`)").unwrap_err().contains("Integer"));
        assert_eq!(eval("fromUnixTimestamp(`1625677200`)").unwrap(), "2021-07-07T17:00:00.000Z");
        assert_eq!(eval("fromUnixTimestampMs(`1625677200123`)").unwrap(), "2021-07-07T17:00:00.123Z");
        assert!(eval("fromUnixTimestamp(`1.5`)").is_err());
        // The standard functions are there too.
        assert_eq!(eval("to_string(hr)").unwrap(), "78");
    }
}
