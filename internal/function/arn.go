package function

import "strings"

// The patterns Lambda documents for FunctionName and Qualifier, quoted in
// its validation errors.
const (
	NamePattern      = `(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?`
	QualifierPattern = `(|[a-zA-Z0-9$_-]+)`
)

// ParseName splits a FunctionName in one of its documented forms: name,
// name:qualifier, account:function:name[:qualifier] or
// arn:partition:lambda:region:account:function:name[:qualifier]. The
// partition, region and account are not checked. ok is false for anything
// else: an empty name or qualifier, characters Lambda does not allow, or
// parts left over.
func ParseName(s string) (name, qualifier string, ok bool) {
	if !strings.Contains(s, ":") { // a plain name, as most invokes give: nothing to split
		if !ValidName(s) {
			return "", "", false
		}
		return s, "", true
	}
	parts := strings.Split(s, ":")
	switch {
	case len(parts) > 1 && parts[0] == "arn":
		if len(parts) < 7 || len(parts) > 8 || parts[2] != "lambda" || parts[5] != "function" {
			return "", "", false
		}
		parts = parts[6:]
	case len(parts) >= 3:
		if len(parts) > 4 || parts[1] != "function" {
			return "", "", false
		}
		parts = parts[2:]
	}
	if len(parts) > 2 || !ValidName(parts[0]) {
		return "", "", false
	}
	if len(parts) == 2 {
		qualifier = parts[1]
		if qualifier != "$LATEST" && (!ValidQualifier(qualifier) || strings.Contains(qualifier, "$")) {
			return "", "", false
		}
	}
	return parts[0], qualifier, true
}

// Owner returns the region and the account a FunctionName in ARN form
// names ("" for a part it does not give): ParseName does not check them.
func Owner(s string) (region, account string) {
	parts := strings.Split(s, ":")
	switch {
	case len(parts) >= 7 && parts[0] == "arn":
		return parts[3], parts[4]
	case len(parts) >= 3 && parts[1] == "function":
		return "", parts[0]
	}
	return "", ""
}

// ValidName reports whether s is a function name: one or more letters,
// digits, hyphens, underscores or periods.
func ValidName(s string) bool {
	return s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == ""
}

// ValidQualifier reports whether s is a Qualifier parameter: 1 to 128
// letters, digits, hyphens, underscores or dollar signs.
func ValidQualifier(s string) bool {
	return s != "" && len(s) <= 128 && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_$") == ""
}
