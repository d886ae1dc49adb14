//! Entity names as typed on the command line: `name`, `pkg/name`, `/ns/name` or `/ns/pkg/name`.

/// Rejected entity names.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{0}' is not a valid entity name")]
pub struct BadName(pub String);

/// A name split into the namespace to address and the path below the collection (`pkg/name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualifiedName {
    pub namespace: String,
    pub package: Option<String>,
    pub name: String,
}

impl QualifiedName {
    /// Resolves `input` against `default_namespace` (usually `_`, which the server maps to the
    /// caller's own namespace).
    pub fn parse(input: &str, default_namespace: &str) -> Result<Self, BadName> {
        let bad = || BadName(input.to_string());
        let (namespace, rest) = match input.strip_prefix('/') {
            Some(stripped) => {
                let (ns, rest) = stripped.split_once('/').ok_or_else(bad)?;
                (ns.to_string(), rest)
            }
            None => (default_namespace.to_string(), input),
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let (package, name) = match parts.as_slice() {
            [name] => (None, *name),
            [package, name] => (Some(package.to_string()), *name),
            _ => return Err(bad()),
        };
        if namespace.is_empty() || name.is_empty() || package.as_deref() == Some("") {
            return Err(bad());
        }
        Ok(Self {
            namespace,
            package,
            name: name.to_string(),
        })
    }

    /// The path segments below the collection: `[pkg, name]` or `[name]`.
    pub fn segments(&self) -> Vec<&str> {
        self.package
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(self.name.as_str()))
            .collect()
    }

    /// `/ns/pkg/name`, the form the API stores in sequence components and rule references.
    pub fn fully_qualified(&self) -> String {
        format!("/{}/{}", self.namespace, self.segments().join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_all_forms() {
        let q = |s| QualifiedName::parse(s, "_").map(|q| q.fully_qualified());
        assert_eq!(q("a"), Ok("/_/a".to_string()));
        assert_eq!(q("p/a"), Ok("/_/p/a".to_string()));
        assert_eq!(q("/ns/a"), Ok("/ns/a".to_string()));
        assert_eq!(q("/ns/p/a"), Ok("/ns/p/a".to_string()));
        assert!(q("/ns").is_err());
        assert!(q("a/b/c").is_err());
        assert!(q("").is_err());
    }
}
