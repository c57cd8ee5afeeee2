package main

import "testing"

// githubEnv points the GitHub settings at a fake and clears the rest.
func githubEnv(t *testing.T, apiURL string) {
	t.Helper()
	for _, k := range []string{"GITHUB_APP_ID", "GITHUB_APP_PRIVATE_KEY", "GITHUB_APP_PRIVATE_KEY_FILE", "GITHUB_INSTALLATION_ID", "GITHUB_RUN_ID", "GITHUB_SERVER_URL", "GITHUB_REF_NAME", "GITHUB_REF_TYPE"} {
		t.Setenv(k, "")
	}
	t.Setenv("GITHUB_TOKEN", "ghp_test")
	t.Setenv("GITHUB_REPOSITORY", "acme/exchange")
	t.Setenv("GITHUB_API_URL", apiURL)
}
