// Options declared once (shared/STYLE.md #2). An options struct lists each of its fields in one
// member function, with its key, doc and rules; that one list yields reading a TOML table (wrong
// types, broken rules and unknown keys are ConfigErrors naming the key), the resolved config that is
// written, the checks of a struct built in code, and the descriptions of `stablelearn list` and
// docs/cli.md. --set works on the TOML document before it is read (Config::set), so it needs nothing
// here.
//
//   struct EwcOptions {
//     double lambda = 100.0;
//     std::string mode = "separate";
//     void fields(options::Visitor& v) {
//       v("lambda", lambda, "penalty weight λ").at_least(0.0);
//       v("mode", mode, "separate | online").one_of({"separate", "online"});
//     }
//   };
//   auto o = options::read<EwcOptions>(section);   // reads, checks; the caller finish()es
//   options::write(w, o, "strategy");             // the resolved values
//   options::check(o, "strategy");                // a struct built in code
//   options::describe<EwcOptions>()               // key, type, default, doc, rules
//
// A struct spanning several tables calls v.table("name") before each table's fields (or
// v.section("name", member) for a member struct with its own fields()); read(const Config&, o)
// then reads, checks and finishes every table. Rules that involve two fields go in an optional
// `void cross_check() const`, run after every field's rules.
#pragma once

#include <cstdint>
#include <deque>
#include <initializer_list>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "stablelearn/core/config.h"

namespace stablelearn::options {

/// One declared option, as listings and docs show it.
struct FieldDoc {
  std::string table;          ///< "" for a single-table struct described without a table name
  std::string key;
  std::string type;           ///< integer | number | boolean | string | integer list | string list
  std::string default_value;  ///< TOML text of the default
  std::string doc;
  std::vector<std::string> rules;  ///< e.g. ">= 0", "one of: separate, online"
};

/// TOML-like text of a value, for errors and listings.
std::string value_text(std::int64_t v);
std::string value_text(int v);
std::string value_text(double v);
std::string value_text(bool v);
std::string value_text(const std::string& v);
std::string value_text(const std::vector<std::int64_t>& v);
std::string value_text(const std::vector<std::string>& v);
std::string type_name(std::int64_t);
std::string type_name(int);
std::string type_name(double);
std::string type_name(bool);
std::string type_name(const std::string&);
std::string type_name(const std::vector<std::int64_t>&);
std::string type_name(const std::vector<std::string>&);

class Visitor;

/// The rules of one field, returned by Visitor::operator(). Each rule checks the value (read or in
/// code) when the visitor checks, and records its text when it describes.
template <class T>
class Field {
 public:
  Field(Visitor& v, const T& value) : v_(v), value_(value) {}
  Field& at_least(T lo) { return rule(value_ >= lo, ">= " + value_text(lo)); }
  Field& above(T lo) { return rule(value_ > lo, "> " + value_text(lo)); }
  Field& at_most(T hi) { return rule(value_ <= hi, "<= " + value_text(hi)); }
  Field& below(T hi) { return rule(value_ < hi, "< " + value_text(hi)); }
  Field& in(T lo, T hi) { return rule(value_ >= lo && value_ <= hi, "in [" + value_text(lo) + ", " + value_text(hi) + "]"); }
  /// A string that must be one of `allowed`, or a list of strings each of which must be.
  Field& one_of(std::initializer_list<const char*> allowed) { return one_of(std::vector<std::string>(allowed.begin(), allowed.end())); }
  Field& one_of(const std::vector<std::string>& allowed);
  /// Every element of an integer list >= lo.
  Field& each_at_least(std::int64_t lo);
  /// Any other rule: `ok` is evaluated on the field's value (C++17 evaluates the chained call's
  /// object, where the value is read, before this argument); `text` says what is required.
  Field& expect(bool ok, const std::string& text) { return rule(ok, text); }

 private:
  Field& rule(bool ok, const std::string& text);
  Visitor& v_;
  const T& value_;
};

class Visitor {
 public:
  enum class Pass { Read, Check, Write, Describe };

  /// Declares a field: key, the member, what it means.
  template <class T>
  Field<T> operator()(const char* key, T& value, const char* doc) {
    key_ = key;
    switch (pass_) {
      case Pass::Read: value = section_->get(key, value); break;
      case Pass::Write: writer_->put(table_, key, value); break;
      case Pass::Describe: docs_->push_back({table_, key, type_name(value), value_text(value), doc, {}}); break;
      case Pass::Check: break;
    }
    if constexpr (std::is_same_v<T, double>) finite_rule(value);
    return Field<T>(*this, value);
  }
  /// An enum field, written as the name paired with its value in `names` (one of the names).
  template <class E>
  Field<std::string> choice(const char* key, E& value, const std::vector<std::pair<std::string, E>>& names, const char* doc) {
    std::vector<std::string> allowed;
    std::string text;
    for (const auto& [n, e] : names) {
      allowed.push_back(n);
      if (e == value) text = n;
    }
    auto& t = scratch_.emplace_back(std::move(text));
    auto f = (*this)(key, t, doc);
    f.one_of(allowed);
    for (const auto& [n, e] : names)
      if (n == t) value = e;
    return f;
  }
  /// The fields that follow belong to table `name` (structs spanning several tables).
  void table(const std::string& name);
  /// The fields of member struct `sub` (with its own fields()) under table `name`.
  template <class O>
  void section(const std::string& name, O& sub) {
    table(name);
    sub.fields(*this);
  }
  Pass pass() const { return pass_; }
  /// Whether the table being read has `key` (false in the other passes).
  bool present(const std::string& key) const { return pass_ == Pass::Read && section_ != nullptr && section_->has(key); }
  /// Tables declared so far, in order.
  const std::vector<std::string>& tables() const { return tables_; }

  // Drivers (use the free functions below).
  Visitor(Pass pass, std::string table) : pass_(pass), table_(std::move(table)) {}
  void bind(ConfigSection* s) { section_ = s; }
  void bind(const Config* c) { config_ = c; }
  void bind(ConfigWriter* w) { writer_ = w; }
  void bind(std::vector<FieldDoc>* d) { docs_ = d; }
  /// Finishes the table being read (unknown keys), for multi-table reads.
  void finish();
  /// A broken rule of the current field: ConfigError "<where>: must be <text>, got <value>" when
  /// checking; recorded in the docs when describing.
  void rule(bool ok, const std::string& text, const std::string& got);

 private:
  void finite_rule(double v);
  std::string where() const;
  Pass pass_;
  std::string table_;
  const char* key_ = "";
  ConfigSection* section_ = nullptr;
  const Config* config_ = nullptr;
  std::optional<ConfigSection> owned_;
  ConfigWriter* writer_ = nullptr;
  std::vector<FieldDoc>* docs_ = nullptr;
  std::vector<std::string> tables_;
  std::deque<std::string> scratch_;  ///< the texts of choice() fields
};

template <class T>
Field<T>& Field<T>::rule(bool ok, const std::string& text) {
  v_.rule(ok, text, value_text(value_));
  return *this;
}

template <class T>
Field<T>& Field<T>::one_of(const std::vector<std::string>& allowed) {
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "\"" : ", \"") + a + "\"";
  auto member = [&](const std::string& s) {
    for (const auto& a : allowed)
      if (a == s) return true;
    return false;
  };
  if constexpr (std::is_same_v<T, std::string>) {
    return rule(member(value_), "one of: " + list);
  } else {
    static_assert(std::is_same_v<T, std::vector<std::string>>, "one_of: a string or a list of strings");
    bool ok = true;
    for (const auto& s : value_) ok = ok && member(s);
    return rule(ok, "each one of: " + list);
  }
}

template <class T>
Field<T>& Field<T>::each_at_least(std::int64_t lo) {
  static_assert(std::is_same_v<T, std::vector<std::int64_t>>, "each_at_least: an integer list");
  bool ok = true;
  for (auto x : value_) ok = ok && x >= lo;
  return rule(ok, "each >= " + value_text(lo));
}

namespace detail {
template <class O, class = void>
struct HasCrossCheck : std::false_type {};
template <class O>
struct HasCrossCheck<O, std::void_t<decltype(std::declval<const O&>().cross_check())>> : std::true_type {};
template <class O>
void cross_check(const O& o) {
  if constexpr (HasCrossCheck<O>::value) o.cross_check();
}
}  // namespace detail

/// Reads o's declared fields from one table (its values are the defaults), checking every rule and
/// cross_check(). The caller calls s.finish() (it may read other keys of the table, e.g. a name).
template <class O>
void read(ConfigSection& s, O& o) {
  Visitor v(Visitor::Pass::Read, s.name());
  v.bind(&s);
  o.fields(v);
  detail::cross_check(o);
}
template <class O>
O read(ConfigSection& s) {
  O o;
  read(s, o);
  return o;
}

/// Reads a struct spanning several tables (v.table / v.section): every table is read, checked and
/// finished (unknown keys), and top-level tables other than these and `other_tables` are errors.
template <class O>
void read(const Config& cfg, O& o, const std::vector<std::string>& other_tables = {}) {
  {
    Visitor names(Visitor::Pass::Describe, "");
    std::vector<FieldDoc> docs;
    names.bind(&docs);
    O defaults;
    defaults.fields(names);
    auto known = names.tables();
    known.insert(known.end(), other_tables.begin(), other_tables.end());
    cfg.check_sections(known);
  }
  Visitor v(Visitor::Pass::Read, "");
  v.bind(&cfg);
  o.fields(v);
  v.finish();
  detail::cross_check(o);
}

/// Checks the rules and cross_check() of a struct built in code (ConfigError "table.key: ...").
template <class O>
void check(O o, const std::string& table = "") {
  Visitor v(Visitor::Pass::Check, table);
  o.fields(v);
  detail::cross_check(o);
}
template <class O>
O checked(O o, const std::string& table = "") {
  check(o, table);
  return o;
}

/// Puts every declared field of o into w (under `table`, or the tables the struct declares).
template <class O>
void write(ConfigWriter& w, O o, const std::string& table = "") {
  Visitor v(Visitor::Pass::Write, table);
  v.bind(&w);
  o.fields(v);
}

/// The declared fields of O with their defaults (or the values of `o`).
template <class O>
std::vector<FieldDoc> describe(O o = O{}, const std::string& table = "") {
  std::vector<FieldDoc> docs;
  Visitor v(Visitor::Pass::Describe, table);
  v.bind(&docs);
  o.fields(v);
  return docs;
}

/// A listing of fields, one per line: "  key = default   doc (rules)"; a "[table]" line before each
/// table's fields when `with_tables`.
std::string format_fields(const std::vector<FieldDoc>& docs, bool with_tables = true, const std::string& indent = "  ");

}  // namespace stablelearn::options
