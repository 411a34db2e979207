package authz_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/authz"
)

func TestParseCourseKey(t *testing.T) {
	good := map[string]authz.CourseKey{
		"course-v1:OrgX+C1+2024":          {Kind: authz.KeyCourseV1, Org: "OrgX", Course: "C1", Run: "2024"},
		"course-v1:edX+DemoX+Demo_Course": {Kind: authz.KeyCourseV1, Org: "edX", Course: "DemoX", Run: "Demo_Course"},
		"course-v1:a.b-c~d+e:f+g":         {Kind: authz.KeyCourseV1, Org: "a.b-c~d", Course: "e:f", Run: "g"},
		"course-v1:Ünï+Çø+2024":           {Kind: authz.KeyCourseV1, Org: "Ünï", Course: "Çø", Run: "2024"},
		"ccx-v1:OrgX+C1+2024+ccx@12":      {Kind: authz.KeyCCX, Org: "OrgX", Course: "C1", Run: "2024"},
		"library-v1:OrgX+Lib":             {Kind: authz.KeyLibraryV1, Org: "OrgX", Course: "Lib"},
		"OrgX/C1/2024":                    {Kind: authz.KeySlash, Org: "OrgX", Course: "C1", Run: "2024"},
	}
	for s, want := range good {
		got, err := authz.ParseCourseKey(s)
		require.NoError(t, err, s)
		require.Equal(t, want, got, s)
	}
	for _, s := range []string{
		"", "OrgX", "course-v1:", "course-v1:OrgX+C1", "course-v1:OrgX+C1+", "course-v1:+C1+R",
		"course-v1:OrgX+C1+R+branch@draft", "course-v1:OrgX+C1+R+version@abc", "course-v1:Org X+C1+R",
		"course-v1:Org/X+C1+R", "course-v1:OrgX+C1+R\n", "ccx-v1:OrgX+C1+R", "ccx-v1:OrgX+C1+R+ccx@x",
		"library-v1:OrgX", "lib:OrgX:Lib", "block-v1:OrgX+C1+R+type@html+block@x", "OrgX/C1", "OrgX/C1/R/x",
		"OrgX/C 1/R", "OrgX//R", "i4x://OrgX/C1/html/x",
	} {
		_, err := authz.ParseCourseKey(s)
		require.Error(t, err, "%q", s)
	}
}
