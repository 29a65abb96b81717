// Placeholder until the allotctl main lands.
int main() { return 1; }
