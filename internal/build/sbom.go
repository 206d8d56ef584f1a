package build

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// SPDX returns an SPDX 2.3 JSON document of the dependency layer's
// packages (pip, npm, Maven, NuGet), with purls.
func SPDX(pkgs []Package, imageName string, created time.Time) ([]byte, error) {
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	type spdxPkg struct {
		SPDXID           string `json:"SPDXID"`
		Name             string `json:"name"`
		VersionInfo      string `json:"versionInfo,omitempty"`
		DownloadLocation string `json:"downloadLocation"`
		ExternalRefs     []any  `json:"externalRefs,omitempty"`
	}
	bad := regexp.MustCompile(`[^A-Za-z0-9.-]`)
	out := []spdxPkg{}
	h := sha256.New()
	for _, p := range pkgs {
		fmt.Fprintf(h, "%s %s %s\n", p.Type, p.Name, p.Version)
		var purl string
		switch p.Type {
		case "pypi":
			purl = "pkg:pypi/" + strings.ToLower(p.Name) + "@" + p.Version
		case "deb":
			purl = "pkg:deb/debian/" + p.Name + "@" + p.Version + "?distro=bookworm"
		case "maven":
			purl = "pkg:maven/" + strings.Replace(p.Name, ":", "/", 1) + "@" + p.Version
		default:
			purl = "pkg:" + p.Type + "/" + p.Name + "@" + p.Version
		}
		out = append(out, spdxPkg{
			SPDXID:           "SPDXRef-" + bad.ReplaceAllString(p.Type+"-"+p.Name+"-"+p.Version, "-"),
			Name:             p.Name,
			VersionInfo:      p.Version,
			DownloadLocation: "NOASSERTION",
			ExternalRefs:     []any{map[string]string{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}},
		})
	}
	doc := map[string]any{
		"spdxVersion":       "SPDX-2.3",
		"dataLicense":       "CC0-1.0",
		"SPDXID":            "SPDXRef-DOCUMENT",
		"name":              imageName,
		"documentNamespace": "https://lambdabox.dev/spdx/function/" + hex.EncodeToString(h.Sum(nil)),
		"creationInfo": map[string]any{
			"created":  created.UTC().Format(time.RFC3339),
			"creators": []string{"Tool: lambdabox"},
		},
		"packages": out,
	}
	return json.MarshalIndent(doc, "", "  ")
}
