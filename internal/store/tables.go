package store

// ColType is a column kind as Django's model fields define it; each dialect
// renders it the way Django's migrations create it.
type ColType int

const (
	Int      ColType = iota // IntegerField, AutoField, ForeignKey to an AutoField
	BigInt                  // BigAutoField, BigIntegerField, ForeignKey to a BigAutoField
	Varchar                 // CharField(max_length=Size)
	Text                    // TextField (longtext on MySQL)
	Bool                    // BooleanField
	DateTime                // DateTimeField (datetime(6) on MySQL)
	JSON                    // JSONField
	Decimal                 // DecimalField(3,1), waffle's percent
	Blob                    // our own tables only
)

// Column is one column of a table.
type Column struct {
	Name string
	Type ColType
	Size int  // for Varchar
	Null bool // nullable
	Auto bool // auto-increment primary key
	PK   bool // primary key without auto-increment (multi-table inheritance)
}

// Index is a named index; Unique marks a unique constraint.
type Index struct {
	Name    string
	Columns []string
	Unique  bool
}

// Table is a table definition.
type Table struct {
	Name    string
	Columns []Column
	Indexes []Index
	Own     bool // an authz_consumer_* table this service owns
}

func col(name string, t ColType) Column      { return Column{Name: name, Type: t} }
func vc(name string, size int) Column        { return Column{Name: name, Type: Varchar, Size: size} }
func null(c Column) Column                   { c.Null = true; return c }
func autoID(t ColType) Column                { return Column{Name: "id", Type: t, Auto: true} }
func pkCol(name string, t ColType) Column    { return Column{Name: name, Type: t, PK: true} }
func idx(name string, cols ...string) Index  { return Index{Name: name, Columns: cols} }
func uniq(name string, cols ...string) Index { return Index{Name: name, Columns: cols, Unique: true} }

// OpenEdXTables are the Open edX tables of SPEC 2, with the columns and types
// Django's migrations give them on MySQL. In production Django owns them: the
// service only reads and writes rows.
var OpenEdXTables = []Table{
	{Name: "auth_user", Columns: []Column{
		autoID(Int), vc("password", 128), null(col("last_login", DateTime)), col("is_superuser", Bool),
		vc("username", 150), vc("first_name", 150), vc("last_name", 150), vc("email", 254),
		col("is_staff", Bool), col("is_active", Bool), col("date_joined", DateTime),
	}, Indexes: []Index{uniq("auth_user_username_uniq", "username")}},
	{Name: "student_courseaccessrole", Columns: []Column{
		autoID(Int), vc("org", 64), vc("course_id", 255), vc("role", 64), col("user_id", Int),
	}, Indexes: []Index{
		uniq("student_courseaccessrole_user_id_org_course_id_role_uniq", "user_id", "org", "course_id", "role"),
		idx("student_courseaccessrole_org_idx", "org"),
		idx("student_courseaccessrole_course_id_idx", "course_id"),
		idx("student_courseaccessrole_role_idx", "role"),
	}},
	{Name: "waffle_flag", Columns: []Column{
		autoID(Int), vc("name", 100), null(col("everyone", Bool)), null(Column{Name: "percent", Type: Decimal}),
		col("testing", Bool), col("superusers", Bool), col("staff", Bool), col("authenticated", Bool),
		col("languages", Text), col("rollout", Bool), col("note", Text), col("created", DateTime), col("modified", DateTime),
	}, Indexes: []Index{uniq("waffle_flag_name_uniq", "name"), idx("waffle_flag_created_idx", "created")}},
	overrideTable("waffle_utils_waffleflagcourseoverridemodel", "course_id"),
	overrideTable("waffle_utils_waffleflagorgoverridemodel", "org"),
	{Name: "casbin_adapter_casbinrule", Columns: []Column{
		autoID(Int), vc("ptype", 255), vc("v0", 255), vc("v1", 255), vc("v2", 255), vc("v3", 255), vc("v4", 255), vc("v5", 255),
	}},
	{Name: "openedx_authz_scope", Columns: []Column{autoID(BigInt), null(vc("external_key", 255))},
		Indexes: []Index{uniq("openedx_authz_scope_external_key_uniq", "external_key")}},
	{Name: "openedx_authz_coursescope", Columns: []Column{pkCol("scope_ptr_id", BigInt), null(vc("course_overview_id", 255))},
		Indexes: []Index{idx("openedx_authz_coursescope_course_overview_id_idx", "course_overview_id")}},
	{Name: "openedx_authz_subject", Columns: []Column{autoID(BigInt)}},
	{Name: "openedx_authz_usersubject", Columns: []Column{pkCol("subject_ptr_id", BigInt), null(col("user_id", Int))},
		Indexes: []Index{idx("openedx_authz_usersubject_user_id_idx", "user_id")}},
	{Name: "openedx_authz_extendedcasbinrule", Columns: []Column{
		autoID(BigInt), vc("casbin_rule_key", 255), null(col("description", Text)), col("created_at", DateTime),
		col("updated_at", DateTime), null(col("metadata", JSON)), col("casbin_rule_id", Int),
		null(col("scope_id", BigInt)), null(col("subject_id", BigInt)),
	}, Indexes: []Index{
		uniq("openedx_authz_extendedcasbinrule_casbin_rule_key_uniq", "casbin_rule_key"),
		uniq("openedx_authz_extendedcasbinrule_casbin_rule_id_uniq", "casbin_rule_id"),
		idx("openedx_authz_extendedcasbinrule_scope_id_idx", "scope_id"),
		idx("openedx_authz_extendedcasbinrule_subject_id_idx", "subject_id"),
	}},
	{Name: "openedx_authz_roleassignmentaudit", Columns: []Column{
		autoID(BigInt), vc("operation", 20), vc("subject", 255), vc("role", 255), vc("scope", 255),
		null(col("actor_id", Int)), col("timestamp", DateTime),
	}, Indexes: []Index{idx("role_audit_subject_idx", "subject"), idx("role_audit_scope_idx", "scope")}},
	{Name: "openedx_authz_authzcourseauthoringmigrationrun", Columns: []Column{
		autoID(BigInt), vc("migration_type", 20), vc("scope_type", 20), vc("scope_key", 255), vc("status", 20),
		col("created_at", DateTime), col("updated_at", DateTime), null(col("completed_at", DateTime)), col("metadata", JSON),
	}},
}

func overrideTable(name, keyCol string) Table {
	return Table{Name: name, Columns: []Column{
		autoID(Int), col("change_date", DateTime), col("enabled", Bool), vc("waffle_flag", 255), vc(keyCol, 255),
		vc("override_choice", 3), col("note", Text), null(col("changed_by_id", Int)),
	}, Indexes: []Index{
		idx(name+"_waffle_flag_idx", "waffle_flag"),
		idx(name+"_"+keyCol+"_idx", keyCol),
	}}
}

// SchemaVersion is the version of the service's own tables.
const SchemaVersion = 1

// OwnTables are the service's own tables (authz_consumer_*), versioned by
// SchemaVersion.
var OwnTables = []Table{
	{Name: "authz_consumer_schema", Own: true, Columns: []Column{col("version", Int), col("applied_at", DateTime)}},
	{Name: "authz_consumer_event", Own: true, Columns: []Column{
		autoID(BigInt), vc("event_id", 255), vc("topic", 255), col("partition_no", Int), col("offset_no", BigInt),
		vc("flag", 255), vc("scope_type", 20), vc("scope_key", 255), col("record_id", BigInt),
		vc("outcome", 20), null(col("run_id", BigInt)), vc("direction", 20), col("detail", Text),
		col("created_at", DateTime), col("updated_at", DateTime),
	}, Indexes: []Index{
		uniq("authz_consumer_event_event_id_uniq", "event_id"),
		idx("authz_consumer_event_record_idx", "scope_type", "scope_key", "record_id"),
	}},
	{Name: "authz_consumer_parked", Own: true, Columns: []Column{
		autoID(BigInt), vc("event_id", 255), vc("topic", 255), col("partition_no", Int), col("offset_no", BigInt),
		null(col("msg_key", Blob)), null(col("msg_value", Blob)), col("headers", Text), vc("reason", 64), col("detail", Text),
		col("parked_at", DateTime), null(col("redriven_at", DateTime)),
	}, Indexes: []Index{uniq("authz_consumer_parked_source_uniq", "topic", "partition_no", "offset_no")}},
}
