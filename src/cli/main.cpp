#include <iostream>
#include "stablelearn/core/env.h"
int main() { std::cout << stablelearn::runtime_info_text(stablelearn::runtime_info()); }
