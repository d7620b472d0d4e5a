#include "strata/schema.h"

#include <algorithm>

#include "strata/json.h"

namespace strata {

struct Schema::Rep {
  Kind kind = Kind::kAny;
  bool subindexed = false;
  std::vector<Schema> children;  // map: key, value; set, list: element
  std::vector<Field> fields;     // record, sorted by name
  bool has_subindexed = false;
};

namespace {

using Kind = Schema::Kind;

constexpr Kind kLeaves[] = {Kind::kAny,    Kind::kBool,   Kind::kInt64,
                            Kind::kDouble, Kind::kString, Kind::kBytes};

bool IsLeaf(Kind k) {
  return std::find(std::begin(kLeaves), std::end(kLeaves), k) != std::end(kLeaves);
}

bool IsCollection(Kind k) { return k == Kind::kMap || k == Kind::kSet || k == Kind::kList; }

const Schema& AnySchema() {
  static const Schema* any = new Schema();
  return *any;
}

// Long values are cut in messages so that one bad write cannot flood a log.
std::string Shown(const Value& v) {
  constexpr size_t kMax = 120;
  std::string s = v.ToString();
  if (s.size() > kMax) s = s.substr(0, kMax) + "...";
  return std::string(TypeName(v.type())) + " " + s;
}

}  // namespace

Schema::Schema() : rep_(std::make_shared<const Rep>()) {}
Schema::Schema(std::shared_ptr<const Rep> rep) : rep_(std::move(rep)) {}

template <typename Build>
Schema Schema::Make(Build build) {
  auto rep = std::make_shared<Rep>();
  build(*rep);
  rep->has_subindexed = rep->subindexed;
  for (const Schema& c : rep->children) rep->has_subindexed |= c.has_subindexed();
  for (const Field& f : rep->fields) rep->has_subindexed |= f.schema.has_subindexed();
  return Schema(std::shared_ptr<const Rep>(std::move(rep)));
}

#define STRATA_LEAF(Name, K)                       \
  Schema Schema::Name() {                          \
    return Make([](Rep& r) { r.kind = Kind::K; }); \
  }
STRATA_LEAF(Any, kAny)
STRATA_LEAF(Bool, kBool)
STRATA_LEAF(Int64, kInt64)
STRATA_LEAF(Double, kDouble)
STRATA_LEAF(String, kString)
STRATA_LEAF(Bytes, kBytes)
#undef STRATA_LEAF

Schema Schema::Map(Schema key, Schema value) {
  return Make([&](Rep& r) {
    r.kind = Kind::kMap;
    r.children = {std::move(key), std::move(value)};
  });
}

Schema Schema::Set(Schema element) {
  return Make([&](Rep& r) {
    r.kind = Kind::kSet;
    r.children = {std::move(element)};
  });
}

Schema Schema::List(Schema element) {
  return Make([&](Rep& r) {
    r.kind = Kind::kList;
    r.children = {std::move(element)};
  });
}

Schema Schema::Record(std::vector<Field> fields) {
  std::stable_sort(fields.begin(), fields.end(),
                   [](const Field& a, const Field& b) { return a.name < b.name; });
  return Make([&](Rep& r) {
    r.kind = Kind::kRecord;
    r.fields = std::move(fields);
  });
}

Schema Schema::Subindexed() const {
  return Make([&](Rep& r) {
    r = *rep_;
    r.subindexed = true;
  });
}

Schema::Kind Schema::kind() const { return rep_->kind; }
bool Schema::subindexed() const { return rep_->subindexed; }
const Schema& Schema::key() const {
  return rep_->children.empty() ? AnySchema() : rep_->children[0];
}
const Schema& Schema::value() const {
  if (rep_->children.empty()) return AnySchema();
  return rep_->children.back();
}
const std::vector<Schema::Field>& Schema::fields() const { return rep_->fields; }
bool Schema::has_subindexed() const { return rep_->has_subindexed; }

const Schema* Schema::field(std::string_view name) const {
  const auto& fs = rep_->fields;
  auto it = std::lower_bound(fs.begin(), fs.end(), name,
                             [](const Field& f, std::string_view n) { return f.name < n; });
  return it != fs.end() && it->name == name ? &it->schema : nullptr;
}

std::string_view SchemaKindName(Schema::Kind kind) {
  switch (kind) {
    case Kind::kAny:
      return "any";
    case Kind::kBool:
      return "bool";
    case Kind::kInt64:
      return "int64";
    case Kind::kDouble:
      return "double";
    case Kind::kString:
      return "string";
    case Kind::kBytes:
      return "bytes";
    case Kind::kMap:
      return "map";
    case Kind::kSet:
      return "set";
    case Kind::kList:
      return "list";
    case Kind::kRecord:
      return "record";
  }
  return "?";
}

bool operator==(const Schema& a, const Schema& b) {
  if (a.rep_ == b.rep_) return true;
  if (a.kind() != b.kind() || a.subindexed() != b.subindexed()) return false;
  if (a.rep_->children.size() != b.rep_->children.size()) return false;
  for (size_t i = 0; i < a.rep_->children.size(); ++i) {
    if (!(a.rep_->children[i] == b.rep_->children[i])) return false;
  }
  if (a.fields().size() != b.fields().size()) return false;
  for (size_t i = 0; i < a.fields().size(); ++i) {
    if (a.fields()[i].name != b.fields()[i].name ||
        !(a.fields()[i].schema == b.fields()[i].schema)) {
      return false;
    }
  }
  return true;
}

Value Schema::ToValue() const {
  if (IsLeaf(kind()) && !subindexed()) return Value(SchemaKindName(kind()));
  Value::Map m;
  m.emplace_back("type", SchemaKindName(kind()));
  switch (kind()) {
    case Kind::kMap:
      m.emplace_back("key", key().ToValue());
      m.emplace_back("value", value().ToValue());
      break;
    case Kind::kSet:
    case Kind::kList:
      m.emplace_back("element", value().ToValue());
      break;
    case Kind::kRecord: {
      Value::Map fs;
      for (const Field& f : fields()) fs.emplace_back(f.name, f.schema.ToValue());
      m.emplace_back("fields", Value::MapOf(std::move(fs)));
      break;
    }
    default:
      break;
  }
  if (subindexed()) m.emplace_back("subindexed", true);
  return Value::MapOf(std::move(m));
}

namespace {

Result<Kind> KindFromName(const Value& name, const std::string& where) {
  if (name.is_string()) {
    for (Kind k : {Kind::kAny, Kind::kBool, Kind::kInt64, Kind::kDouble, Kind::kString,
                   Kind::kBytes, Kind::kMap, Kind::kSet, Kind::kList, Kind::kRecord}) {
      if (SchemaKindName(k) == name.as_string()) return k;
    }
  }
  return Status::InvalidArgument("schema at " + where + ": unknown type " + name.ToString() +
                                 " (expected any, bool, int64, double, string, bytes, map, set, "
                                 "list or record)");
}

Schema LeafOf(Kind k) {
  switch (k) {
    case Kind::kBool:
      return Schema::Bool();
    case Kind::kInt64:
      return Schema::Int64();
    case Kind::kDouble:
      return Schema::Double();
    case Kind::kString:
      return Schema::String();
    case Kind::kBytes:
      return Schema::Bytes();
    default:
      return Schema::Any();
  }
}

Result<Schema> SchemaFromValue(const Value& v, const std::string& where);

Result<Schema> Part(const Value& m, const char* name, const std::string& where) {
  const Value* part = m.Find(name);
  if (part == nullptr) {
    return Status::InvalidArgument("schema at " + where + ": missing \"" + name + "\"");
  }
  return SchemaFromValue(*part, where + "." + name);
}

Result<Schema> SchemaFromValue(const Value& v, const std::string& where) {
  if (v.is_string()) {
    STRATA_ASSIGN_OR_RETURN(Kind k, KindFromName(v, where));
    if (!IsLeaf(k)) {
      return Status::InvalidArgument("schema at " + where + ": " + v.as_string() +
                                     " needs a map form with its parts, e.g. {\"type\":\"" +
                                     v.as_string() + "\", ...}");
    }
    return LeafOf(k);
  }
  if (!v.is_map()) {
    return Status::InvalidArgument("schema at " + where + ": expected a type name or a map, got " +
                                   Shown(v));
  }
  const Value* type = v.Find("type");
  if (type == nullptr) return Status::InvalidArgument("schema at " + where + ": missing \"type\"");
  STRATA_ASSIGN_OR_RETURN(Kind k, KindFromName(*type, where));
  Schema s;
  std::vector<std::string> allowed = {"type", "subindexed"};
  switch (k) {
    case Kind::kMap: {
      STRATA_ASSIGN_OR_RETURN(Schema key, Part(v, "key", where));
      STRATA_ASSIGN_OR_RETURN(Schema value, Part(v, "value", where));
      s = Schema::Map(std::move(key), std::move(value));
      allowed.insert(allowed.end(), {"key", "value"});
      break;
    }
    case Kind::kSet:
    case Kind::kList: {
      STRATA_ASSIGN_OR_RETURN(Schema element, Part(v, "element", where));
      s = k == Kind::kSet ? Schema::Set(std::move(element)) : Schema::List(std::move(element));
      allowed.push_back("element");
      break;
    }
    case Kind::kRecord: {
      const Value* fs = v.Find("fields");
      if (fs == nullptr || !fs->is_map()) {
        return Status::InvalidArgument("schema at " + where +
                                       ": a record needs \"fields\", a map "
                                       "from field name to schema");
      }
      std::vector<Schema::Field> fields;
      for (const auto& [name, fv] : fs->as_map()) {
        if (!name.is_string()) {
          return Status::InvalidArgument("schema at " + where + ": field names are strings, got " +
                                         Shown(name));
        }
        STRATA_ASSIGN_OR_RETURN(Schema f, SchemaFromValue(fv, where + "." + name.as_string()));
        fields.push_back(Schema::Field{name.as_string(), std::move(f)});
      }
      s = Schema::Record(std::move(fields));
      allowed.push_back("fields");
      break;
    }
    default:
      s = LeafOf(k);
      break;
  }
  for (const auto& [name, unused] : v.as_map()) {
    if (!name.is_string() ||
        std::find(allowed.begin(), allowed.end(), name.as_string()) == allowed.end()) {
      return Status::InvalidArgument("schema at " + where + ": unknown entry " + name.ToString() +
                                     " for a " + std::string(SchemaKindName(k)));
    }
  }
  if (const Value* sub = v.Find("subindexed")) {
    if (!sub->is_bool()) {
      return Status::InvalidArgument("schema at " + where +
                                     ": \"subindexed\" must be a bool, got " + Shown(*sub));
    }
    if (sub->as_bool()) s = s.Subindexed();
  }
  return s;
}

}  // namespace

Result<Schema> Schema::FromValue(const Value& v) { return SchemaFromValue(v, "root"); }

std::string Schema::ToString() const {
  std::string out = subindexed() ? "subindexed " : "";
  out += SchemaKindName(kind());
  switch (kind()) {
    case Kind::kMap:
      out += "<" + key().ToString() + ", " + value().ToString() + ">";
      break;
    case Kind::kSet:
    case Kind::kList:
      out += "<" + value().ToString() + ">";
      break;
    case Kind::kRecord: {
      out += "{";
      for (size_t i = 0; i < fields().size(); ++i) {
        if (i > 0) out += ", ";
        out += fields()[i].name + ": " + fields()[i].schema.ToString();
      }
      out += "}";
      break;
    }
    default:
      break;
  }
  return out;
}

namespace {

// `where` names the schema position: root, root{key}, root{value}, root{element}, root.field
Status CheckStructure(const Schema& s, bool stored_position, bool is_root,
                      const std::string& where) {
  if (s.subindexed()) {
    if (!IsCollection(s.kind())) {
      return Status::InvalidArgument("schema at " + where +
                                     ": only maps, sets and lists can be "
                                     "subindexed, not " +
                                     std::string(SchemaKindName(s.kind())));
    }
    if (!stored_position) {
      return Status::InvalidArgument(
          "schema at " + where + ": a subindexed " + std::string(SchemaKindName(s.kind())) +
          " cannot be inside a blob (a map key, a set or list element, or a structure that is "
          "not subindexed): mark its parents subindexed too");
    }
  }
  switch (s.kind()) {
    case Kind::kMap: {
      STRATA_RETURN_IF_ERROR(CheckStructure(s.key(), false, false, where + "{key}"));
      const bool values_stored = stored_position && (s.subindexed() || is_root);
      return CheckStructure(s.value(), values_stored, false, where + "{value}");
    }
    case Kind::kSet:
    case Kind::kList:
      return CheckStructure(s.value(), false, false, where + "{element}");
    case Kind::kRecord:
      for (size_t i = 0; i < s.fields().size(); ++i) {
        const Schema::Field& f = s.fields()[i];
        if (i > 0 && s.fields()[i - 1].name == f.name) {
          return Status::InvalidArgument("schema at " + where + ": duplicate field \"" + f.name +
                                         "\"");
        }
        STRATA_RETURN_IF_ERROR(
            CheckStructure(f.schema, stored_position, false, where + "." + f.name));
      }
      return Status::Ok();
    default:
      return Status::Ok();
  }
}

bool Matches(Kind k, const Value& v) {
  switch (k) {
    case Kind::kAny:
      return true;
    case Kind::kBool:
      return v.is_bool();
    case Kind::kInt64:
      return v.is_int();
    case Kind::kDouble:
      return v.is_double();
    case Kind::kString:
      return v.is_string();
    case Kind::kBytes:
      return v.is_bytes();
    case Kind::kMap:
      return v.is_map();
    case Kind::kSet:
      return v.is_set();
    case Kind::kList:
      return v.is_list();
    case Kind::kRecord:
      return v.is_map();
  }
  return false;
}

// A violation found below the value being checked: what was wrong, and the path segments
// from the violation up (innermost first), so that a valid value costs no string work.
struct Violation {
  std::string message;
  std::vector<std::string> segments;
};

bool Fail(Violation* out, std::string message) {
  out->message = std::move(message);
  return false;
}

bool Check(const Schema& schema, const Value& v, Violation* out) {
  if (!Matches(schema.kind(), v)) {
    return Fail(out, "expected " + schema.ToString() + ", got " + Shown(v));
  }
  switch (schema.kind()) {
    case Kind::kMap:
      for (const auto& [key, value] : v.as_map()) {
        bool ok = Matches(schema.key().kind(), key) && Check(schema.key(), key, out);
        if (!ok && out->message.empty()) {
          Fail(out, "expected a " + schema.key().ToString() + " key, got " + Shown(key));
        }
        if (ok && Check(schema.value(), value, out)) continue;
        out->segments.push_back("[" + ToJson(key) + "]");
        return false;
      }
      return true;
    case Kind::kSet:
      for (const Value& e : v.as_set()) {
        if (Check(schema.value(), e, out)) continue;
        out->segments.push_back("[" + ToJson(e) + "]");
        return false;
      }
      return true;
    case Kind::kList:
      for (size_t i = 0; i < v.as_list().size(); ++i) {
        if (Check(schema.value(), v.as_list()[i], out)) continue;
        out->segments.push_back("[" + std::to_string(i) + "]");
        return false;
      }
      return true;
    case Kind::kRecord:
      for (const auto& [key, value] : v.as_map()) {
        const Schema* f = key.is_string() ? schema.field(key.as_string()) : nullptr;
        if (f == nullptr) {
          std::string names;
          for (const Schema::Field& field : schema.fields()) {
            names += (names.empty() ? "" : ", ") + field.name;
          }
          return Fail(out, "unknown field " + key.ToString() + " (fields: " + names + ")");
        }
        if (Check(*f, value, out)) continue;
        out->segments.push_back("." + key.as_string());
        return false;
      }
      return true;
    default:
      return true;
  }
}

}  // namespace

Status PStateSchema::Check() const { return CheckStructure(root, true, true, "root"); }

Value PStateSchema::ToValue() const {
  return Value::MapOf({{"schema", root.ToValue()}, {"global", global}});
}

Result<PStateSchema> PStateSchema::FromValue(const Value& v) {
  if (!v.is_map()) {
    return Status::InvalidArgument(
        "a PState schema must be a map {\"schema\": ..., \"global\": bool}, got " + Shown(v));
  }
  PStateSchema out;
  const Value* root = v.Find("schema");
  if (root == nullptr) return Status::InvalidArgument("a PState schema needs \"schema\"");
  STRATA_ASSIGN_OR_RETURN(out.root, Schema::FromValue(*root));
  if (const Value* g = v.Find("global")) {
    if (!g->is_bool())
      return Status::InvalidArgument("PState schema: \"global\" must be a bool, got " + Shown(*g));
    out.global = g->as_bool();
  }
  for (const auto& [name, unused] : v.as_map()) {
    if (name != Value("schema") && name != Value("global")) {
      return Status::InvalidArgument("PState schema: unknown entry " + name.ToString());
    }
  }
  return out;
}

std::string PStateSchema::ToString() const { return (global ? "global " : "") + root.ToString(); }

namespace {

// `where` describes the place being compared, innermost part first ("value of the map",
// "field \"amount\" of the record in the value of the map"); empty at the root.
std::string Inside(std::string_view part, const std::string& where) {
  return where.empty() ? std::string(part) : std::string(part) + " in the " + where;
}

std::string Place(const std::string& where) { return where.empty() ? "root" : where; }

// OK when `declared` can serve the data stored under `stored` unchanged; otherwise the first
// place that differs and how, as the message of an InvalidArgument.
Status CheckWidens(const Schema& stored, const Schema& declared, const std::string& where) {
  if (stored == declared) return Status::Ok();
  auto changed = [&](const std::string& how) {
    return Status::InvalidArgument(Place(where) + ": " + how);
  };
  if (stored.subindexed() != declared.subindexed()) {
    return changed(stored.ToString() + " became " + declared.ToString() +
                   " (the subindexed flag decides how the data is stored)");
  }
  if (declared.kind() == Kind::kAny) {
    if (stored.has_subindexed()) {
      return changed(stored.ToString() +
                     " became any, but its subindexed parts are stored one element per "
                     "record and an any is one blob");
    }
    return Status::Ok();
  }
  if (stored.kind() != declared.kind()) {
    return changed(stored.ToString() + " became " + declared.ToString());
  }
  switch (stored.kind()) {
    case Kind::kMap:
      STRATA_RETURN_IF_ERROR(
          CheckWidens(stored.key(), declared.key(), Inside("key of the map", where)));
      return CheckWidens(stored.value(), declared.value(), Inside("value of the map", where));
    case Kind::kSet:
      return CheckWidens(stored.value(), declared.value(), Inside("element of the set", where));
    case Kind::kList:
      return CheckWidens(stored.value(), declared.value(), Inside("element of the list", where));
    case Kind::kRecord: {
      for (const Schema::Field& f : stored.fields()) {
        const Schema* now = declared.field(f.name);
        if (now == nullptr) return changed("field \"" + f.name + "\" was removed");
        STRATA_RETURN_IF_ERROR(
            CheckWidens(f.schema, *now, Inside("field \"" + f.name + "\" of the record", where)));
      }
      // A record with subindexed fields keeps its plain fields in one blob and each
      // subindexed field under its own keys, so it can gain one; a record stored as one
      // blob cannot.
      for (const Schema::Field& f : declared.fields()) {
        if (stored.field(f.name) == nullptr && f.schema.has_subindexed() &&
            !stored.has_subindexed()) {
          return changed(
              "new field \"" + f.name + "\" (" + f.schema.ToString() +
              ") has a subindexed part, which would change how the record is stored (one "
              "blob now)");
        }
      }
      return Status::Ok();
    }
    default:  // two equal leaves were caught above
      return changed(stored.ToString() + " became " + declared.ToString());
  }
}

}  // namespace

Result<bool> SchemaWidens(const PStateSchema& stored, const PStateSchema& declared) {
  if (stored == declared) return false;
  Status st = stored.global != declared.global
                  ? Status::InvalidArgument(
                        std::string("a ") + (stored.global ? "global" : "partitioned") +
                        " PState cannot become " + (declared.global ? "global" : "partitioned"))
                  : CheckWidens(stored.root, declared.root, "");
  if (st.ok()) return true;
  return Status::InvalidArgument(stored.ToString() + " cannot become " + declared.ToString() +
                                 " without a migration: " + st.message());
}

Status ValidateValue(const Schema& schema, const Value& v, std::string_view location) {
  Violation violation;
  if (Check(schema, v, &violation)) return Status::Ok();
  std::string where(location);
  for (auto it = violation.segments.rbegin(); it != violation.segments.rend(); ++it) where += *it;
  return Status::SchemaViolation(where + ": " + violation.message);
}

}  // namespace strata
