#include "stablelearn/core/options.h"

#include <cmath>

#include <fmt/format.h>

#include "stablelearn/core/error.h"

namespace stablelearn::options {

std::string value_text(std::int64_t v) { return std::to_string(v); }
std::string value_text(int v) { return std::to_string(v); }
std::string value_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  auto s = fmt::format("{}", v);  // shortest text that reads back as v
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}
std::string value_text(bool v) { return v ? "true" : "false"; }
std::string value_text(const std::string& v) { return "\"" + v + "\""; }
std::string value_text(const std::vector<std::int64_t>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}
std::string value_text(const std::vector<std::string>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", \"" : "\"") + v[i] + "\"";
  return s + "]";
}

std::string type_name(std::int64_t) { return "integer"; }
std::string type_name(int) { return "integer"; }
std::string type_name(double) { return "number"; }
std::string type_name(bool) { return "boolean"; }
std::string type_name(const std::string&) { return "string"; }
std::string type_name(const std::vector<std::int64_t>&) { return "integer list"; }
std::string type_name(const std::vector<std::string>&) { return "string list"; }

void Visitor::table(const std::string& name) {
  if (pass_ == Pass::Read && config_ != nullptr) {
    finish();
    owned_.emplace(config_->section(name));
    section_ = &*owned_;
  }
  table_ = name;
  tables_.push_back(name);
}

void Visitor::finish() {
  if (owned_) owned_->finish();
  owned_.reset();
  section_ = nullptr;
}

std::string Visitor::where() const {
  if (pass_ == Pass::Read && section_ != nullptr) return section_->where(key_);
  return table_.empty() ? std::string(key_) : table_ + "." + key_;
}

void Visitor::rule(bool ok, const std::string& text, const std::string& got) {
  if (pass_ == Pass::Describe) {
    if (docs_ != nullptr && !docs_->empty()) docs_->back().rules.push_back(text);
    return;
  }
  if (pass_ == Pass::Write || ok) return;
  SL_THROW(ConfigError, where(), ": must be ", text, ", got ", got);
}

void Visitor::finite_rule(double v) {
  if (pass_ == Pass::Read || pass_ == Pass::Check)
    SL_CHECK(std::isfinite(v), ConfigError, where(), ": must be a finite number, got ", value_text(v));
}

std::string format_fields(const std::vector<FieldDoc>& docs, bool with_tables, const std::string& indent) {
  std::size_t width = 0;
  for (const auto& d : docs) width = std::max(width, d.key.size() + 3 + d.default_value.size());
  width = std::min<std::size_t>(width, 40);
  std::string out, table = "\x01";
  for (const auto& d : docs) {
    if (with_tables && d.table != table) {
      table = d.table;
      if (!table.empty()) out += indent + "[" + table + "]\n";
    }
    const auto lhs = d.key + " = " + d.default_value;
    std::string rules;
    for (const auto& r : d.rules) rules += (rules.empty() ? "" : "; ") + r;
    out += fmt::format("{}{:<{}}  {}{}{}\n", indent, lhs, width, d.doc, rules.empty() ? "" : (d.doc.empty() ? "(" : " ("),
                       rules.empty() ? "" : rules + ")");
  }
  return out;
}

}  // namespace stablelearn::options
